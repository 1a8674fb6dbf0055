"""The SQLite bar cache: no refetch when fresh, replay when the live source is down, source kept."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from agent.errors import DataError
from agent.market.bar_cache import BarCache, CachedProvider
from agent.market.bars import Bars
from agent.market.sim import SimProvider


class CountingProvider:
    """A stand-in live provider (sim bars under another name) that can be switched off."""

    name = "yfinance"

    def __init__(self):
        self.calls = 0
        self.down = False
        self.sim = SimProvider()

    def get_bars(self, ticker, timeframe="1d", end=None, lookback=300) -> Bars:
        self.calls += 1
        if self.down:
            raise DataError("yfinance: connection reset")
        bars = self.sim.get_bars(ticker, timeframe, end=end or date(2025, 6, 30), lookback=lookback)
        return Bars(bars.ticker, timeframe, self.name, bars.frame, bars.report)


def test_store_and_load_round_trip(tmp_path):
    cache = BarCache(tmp_path / "agent.db")
    frame = SimProvider().get_bars("PETR4", end=date(2025, 6, 30), lookback=50).frame
    assert cache.store("yfinance", "PETR4", "1d", frame) == 50
    loaded, source = cache.load("PETR4", "1d")
    assert source == "yfinance"
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)
    assert cache.load("VALE3", "1d")[1] is None


def test_fresh_cache_is_not_refetched(tmp_path):
    live = CountingProvider()
    provider = CachedProvider(live, BarCache(tmp_path / "agent.db"), is_fresh=lambda t, tf, last: True)
    first = provider.get_bars("PETR4", lookback=100)
    second = provider.get_bars("PETR4", lookback=100)
    assert live.calls == 1
    pd.testing.assert_frame_equal(first.frame, second.frame, check_freq=False)
    assert "not refetched" in second.report.notes[-1]
    assert second.source == "yfinance"


def test_stale_cache_is_refetched(tmp_path):
    live = CountingProvider()
    provider = CachedProvider(live, BarCache(tmp_path / "agent.db"), is_fresh=lambda t, tf, last: False)
    provider.get_bars("PETR4", lookback=100)
    provider.get_bars("PETR4", lookback=100)
    assert live.calls == 2


def test_offline_run_replays_the_cache_and_says_so(tmp_path):
    live = CountingProvider()
    cache = BarCache(tmp_path / "agent.db")
    CachedProvider(live, cache).get_bars("VALE3", lookback=120)
    live.down = True
    bars = CachedProvider(live, cache).get_bars("VALE3", lookback=120)
    assert len(bars) == 120 and bars.source == "yfinance"
    assert "served from cache" in bars.report.notes[-1]
    with pytest.raises(DataError):
        CachedProvider(live, cache).get_bars("ITUB4")  # nothing cached: the failure stands


def test_stale_cache_fetches_only_the_missing_bars(tmp_path):
    class Recorder(CountingProvider):
        def __init__(self):
            super().__init__()
            self.lookbacks = []

        def get_bars(self, ticker, timeframe="1d", end=None, lookback=300):
            self.lookbacks.append(lookback)  # a live feed: bars up to today
            bars = self.sim.get_bars(ticker, timeframe, end=end, lookback=lookback)
            return Bars(bars.ticker, timeframe, self.name, bars.frame, bars.report)

    live = Recorder()
    provider = CachedProvider(live, BarCache(tmp_path / "agent.db"))
    full = provider.get_bars("PETR4", lookback=200)
    again = provider.get_bars("PETR4", lookback=200)
    assert live.lookbacks[0] == 200 and live.lookbacks[1] < 200, "the second call asks only for the tail"
    assert len(again) == 200
    pd.testing.assert_frame_equal(again.frame, full.frame, check_freq=False)
    assert "from the cache" in again.report.notes[-1]


def test_an_in_progress_bar_is_neither_cached_nor_used(tmp_path):
    live = CountingProvider()
    last = pd.Timestamp("2025-06-30")
    provider = CachedProvider(live, BarCache(tmp_path / "agent.db"),
                              completed=lambda tf, f: f.loc[f.index < last])  # 2025-06-30 still trading
    bars = provider.get_bars("PETR4", lookback=50)
    assert bars.frame.index[-1] < last
    cached, _ = BarCache(tmp_path / "agent.db").load("PETR4", "1d")
    assert cached.index[-1] < last
