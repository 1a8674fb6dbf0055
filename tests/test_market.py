"""Market data providers: the csv loader on every real daily file, and the seeded simulator."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from agent.errors import ConfigError, DataError
from agent.market import CsvProvider, SimProvider, validate_bars
from tests.conftest import require_shared_data


def test_csv_loads_every_real_daily_file():
    daily = require_shared_data()
    provider = CsvProvider(daily)
    files = sorted(p for p in daily.glob("*.SA.csv"))
    assert len(files) >= 20
    for path in files:
        ticker = path.name.removesuffix(".SA.csv")
        bars = provider.get_bars(ticker, lookback=100_000)
        f = bars.frame
        assert len(bars) > 500, ticker
        assert f.index.is_monotonic_increasing and not f.index.duplicated().any()
        assert (f[["open", "high", "low", "close"]] > 0).all().all()
        assert (f["high"] >= f["low"]).all()
        assert bars.report.rows_in == len(pd.read_csv(path))
        assert bars.report.rows_out == len(f)


def test_csv_reads_columns_by_name_and_windows_by_date():
    provider = CsvProvider(require_shared_data())
    bars = provider.get_bars("petr4.sa", end=date(2024, 12, 31), lookback=50)
    assert bars.ticker == "PETR4" and len(bars) == 50
    assert bars.frame.index[-1] <= pd.Timestamp("2024-12-31")
    raw = pd.read_csv(require_shared_data() / "PETR4.SA.csv", index_col="Date", parse_dates=True)
    last = bars.frame.index[-1]
    assert bars.frame.loc[last, "close"] == pytest.approx(raw.loc[last, "Close"])
    assert bars.frame.loc[last, "open"] == pytest.approx(raw.loc[last, "Open"])


def test_csv_drops_the_flat_zero_volume_holiday_rows_and_says_so():
    bars = CsvProvider(require_shared_data()).get_bars("PETR4", lookback=100_000)
    assert bars.report.dropped.get("flat_zero_volume", 0) > 0
    f = bars.frame
    flat = (f.open == f.high) & (f.high == f.low) & (f.low == f.close) & (f.volume == 0)
    assert not flat.any()


def test_csv_errors_are_specific(tmp_path):
    with pytest.raises(ConfigError):
        CsvProvider(tmp_path / "missing")
    (tmp_path / "BAD.SA.csv").write_text("Date,Price\n2024-01-02,10\n")
    with pytest.raises(DataError, match="lacks column"):
        CsvProvider(tmp_path).get_bars("BAD")
    with pytest.raises(DataError, match="no file for XPTO3"):
        CsvProvider(tmp_path).get_bars("XPTO3")


def test_validate_bars_counts_every_drop_reason():
    idx = pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-08"])
    raw = pd.DataFrame({
        "open": [10, 10, 10, 10, -1, 10], "high": [11, 11, 11, 9, 11, 10],
        "low": [9, 9, 9, 10, 9, 10], "close": [10, 10, 10, 10, 10, 10], "volume": [1, 1, 1, 1, 1, 0],
    }, index=idx)
    clean, report = validate_bars(raw)
    assert list(clean.index) == list(pd.to_datetime(["2024-01-02", "2024-01-03"]))
    assert report.dropped == {"duplicate_timestamp": 1, "non_positive_price": 1, "high_below_low": 1,
                              "flat_zero_volume": 1}


def test_sim_is_deterministic_and_never_changes_past_bars():
    a = SimProvider(seed=7).get_bars("PETR4", end=date(2024, 6, 28), lookback=400).frame
    b = SimProvider(seed=7).get_bars("PETR4", end=date(2025, 6, 30), lookback=800).frame
    pd.testing.assert_frame_equal(a, b.loc[a.index])  # adding future bars leaves the past intact
    c = SimProvider(seed=8).get_bars("PETR4", end=date(2024, 6, 28), lookback=400).frame
    assert not a["close"].equals(c["close"])
    other = SimProvider(seed=7).get_bars("VALE3", end=date(2024, 6, 28), lookback=400).frame
    assert not a["close"].equals(other["close"])


def test_sim_bars_are_valid_and_plausible():
    f = SimProvider().get_bars("ITUB4", end=date(2025, 6, 30), lookback=5000).frame
    _, report = validate_bars(f)
    assert report.dropped == {}
    assert 1.0 < f["close"].min() and f["close"].max() < 500.0  # realistic B3 price levels
    assert f.index[-1] == pd.Timestamp("2025-06-30")
