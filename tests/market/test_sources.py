"""Choosing the market source: auto falls back brapi -> yfinance -> sim, retries network errors."""

from __future__ import annotations

from datetime import date

import pytest

from agent.errors import ConfigError, DataError, DataSourceUnavailable, RateLimited
from agent.market.bar_cache import CachedProvider
from agent.market.bars import Bars
from agent.market.sim import SimProvider
from agent.market.sources import (
    FallbackProvider,
    RetryingProvider,
    make_market_provider,
)
from tests.conftest import make_settings


class FlakyProvider:
    """Fails ``failures`` times with ``error``, then serves simulated bars under ``name``."""

    def __init__(self, name: str, failures: int, error: Exception):
        self.name, self.failures, self.error, self.calls = name, failures, error, 0

    def get_bars(self, ticker, timeframe="1d", end=None, lookback=300) -> Bars:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        bars = SimProvider().get_bars(ticker, timeframe, end=date(2025, 6, 30), lookback=lookback)
        return Bars(bars.ticker, timeframe, self.name, bars.frame, bars.report)


def test_retrying_provider_backs_off_then_succeeds():
    sleeps = []
    inner = FlakyProvider("yfinance", 2, DataSourceUnavailable("connection reset"))
    bars = RetryingProvider(inner, attempts=3, base_delay_s=1.0, sleep=sleeps.append).get_bars("PETR4")
    assert bars.source == "yfinance" and inner.calls == 3
    assert sleeps == [1.0, 2.0]


def test_retrying_provider_honours_retry_after_and_gives_up():
    sleeps = []
    err = RateLimited("429")
    err.retry_after = 7.0
    inner = FlakyProvider("brapi", 5, err)
    with pytest.raises(RateLimited):
        RetryingProvider(inner, attempts=2, base_delay_s=1.0, sleep=sleeps.append).get_bars("PETR4")
    assert sleeps == [7.0] and inner.calls == 2


def test_plain_data_errors_are_not_retried():
    inner = FlakyProvider("yfinance", 5, DataError("no data for XPTO3.SA"))
    with pytest.raises(DataError):
        RetryingProvider(inner, sleep=lambda s: None).get_bars("XPTO3")
    assert inner.calls == 1


def test_fallback_to_sim_is_recorded_in_the_bars():
    chain = FallbackProvider([FlakyProvider("brapi", 9, DataError("brapi: HTTP 503")),
                              FlakyProvider("yfinance", 9, DataError("yfinance: timed out")),
                              SimProvider()])
    bars = chain.get_bars("PETR4", end=date(2025, 6, 30))
    assert bars.source == "sim"
    assert "brapi: HTTP 503" in bars.report.notes[-1] and "used sim" in bars.report.notes[-1]


def test_fallback_with_every_source_down_is_a_data_error():
    chain = FallbackProvider([FlakyProvider("yfinance", 9, DataError("down"))])
    with pytest.raises(DataError, match="no market data source answered"):
        chain.get_bars("PETR4")


def test_make_market_provider_builds_the_auto_chain(tmp_path):
    settings = make_settings({("database_path",): str(tmp_path / "agent.db")})
    auto = make_market_provider(settings, "auto")
    assert [p.name for p in auto.providers] == ["yfinance", "sim"]
    assert isinstance(auto.providers[0], CachedProvider)
    with_token = make_settings({("database_path",): str(tmp_path / "agent.db")}, environ={"BRAPI_TOKEN": "abcd1234"})
    assert [p.name for p in make_market_provider(with_token, "auto").providers] == ["brapi", "yfinance", "sim"]


def test_brapi_without_a_token_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="BRAPI_TOKEN"):
        make_market_provider(make_settings({("database_path",): str(tmp_path / "a.db")}), "brapi")


def test_a_confirmation_timeframe_from_a_fallback_source_is_not_mixed_in(tmp_path):
    """Daily bars from a live source, 1h only from the simulator: the 1h view must be marked unavailable."""
    from agent.graph import build_graph, run_cascade
    from tests.conftest import make_deps

    class DailyOnly(FlakyProvider):
        def get_bars(self, ticker, timeframe="1d", end=None, lookback=300):
            if timeframe != "1d":
                raise DataError(f"yfinance: no {timeframe} history that far back")
            return super().get_bars(ticker, timeframe, end, lookback)

    market = FallbackProvider([DailyOnly("yfinance", 0, DataError("unused")), SimProvider()])
    record = run_cascade(build_graph(make_deps(tmp_path, market=market)), "PETR4", as_of="2025-06-30")
    assert record["data_source"] == "yfinance" and "market:sim" not in record["defaults_in_use"]
    secondary = {t["timeframe"]: t for t in record["timeframes"][1:]}
    assert "only sim bars" in secondary["1h"]["unavailable"]
