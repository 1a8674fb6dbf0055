"""Market data providers: the csv loader on every real daily file, and the seeded simulator."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError, DataError
from agent.market.csv_files import CsvProvider
from agent.market.sim import SimProvider
from agent.market.validation import validate_bars
from tests.conftest import DAILY_DIR, require_shared_data


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
    with pytest.raises(DataError, match="no 1d file for XPTO3"):
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


# ------------------------------------------------------------------ real-data quirks and layouts

INTRADAY_DIR = DAILY_DIR.parent / "intraday"


def test_bbdc4_broken_history_before_june_2009_is_cut_with_a_note():
    bars = CsvProvider(require_shared_data()).get_bars("BBDC4", lookback=100_000)
    assert bars.frame.index[0] >= pd.Timestamp("2009-05-29")
    assert bars.report.dropped["before_price_jump"] > 300
    assert any("2009-05-29" in note and "-43%" in note for note in bars.report.notes)


def test_every_intraday_file_loads_and_after_hours_bars_are_dropped():
    require_shared_data()
    provider = CsvProvider(DAILY_DIR.parent)
    files = sorted(INTRADAY_DIR.glob("*_B_0_60min.csv"))
    assert len(files) >= 4
    for path in files:
        ticker = path.name.split("_")[0]
        bars = provider.get_bars(ticker, "1h", lookback=100_000)
        f = bars.frame
        raw_rows = sum(1 for _ in open(path, encoding="utf-8"))
        assert bars.report.rows_in == raw_rows
        assert f.index.is_monotonic_increasing, "ProfitChart files are newest-first"
        clock = f.index.strftime("%H:%M")
        assert (clock >= "10:00").all() and (clock < "18:00").all()
        if ticker != "IBOV":
            assert bars.report.dropped.get("after_hours", 0) > 0, f"{ticker}: 18:15/19:25 prints must go"


def test_profitchart_values_use_decimal_comma_and_the_right_columns():
    bars = CsvProvider(require_shared_data().parent).get_bars("PETR4", "1h", lookback=100_000)
    # First line of the file: PETR4;30/12/2025;17:00:00;30,93;30,96;30,82;30,82;175515252,00;5686700
    last = bars.frame.loc[pd.Timestamp("2025-12-30 17:00")]
    assert (last["open"], last["high"], last["low"], last["close"], last["volume"]) == (30.93, 30.96, 30.82, 30.82, 5686700)


def xpto3_frame(tmp_path, text: str) -> pd.DataFrame:
    """Daily bars parsed from a small Yahoo-layout file written for the test."""
    (tmp_path / "XPTO3.SA.csv").write_text(text)
    return CsvProvider(tmp_path).get_bars("XPTO3").frame


def test_yahoo_layout_with_adj_close_is_dividend_adjusted(tmp_path):
    f = xpto3_frame(tmp_path, "Date,Open,High,Low,Close,Adj Close,Volume\n"
                              "2024-01-02,10,11,9,10,9,100\n"
                              "2024-01-03,10,12,10,11,11,100\n")
    assert list(f["close"]) == [9.0, 11.0]
    assert f.iloc[0][["open", "high", "low"]].tolist() == pytest.approx([9.0, 9.9, 8.1])


def test_index_zero_volume_is_not_a_defect():
    bars = CsvProvider(require_shared_data()).get_bars("IBOV", lookback=100_000)
    assert "zero_volume" not in bars.report.dropped
    assert bars.report.rows_out == 4331  # the BVSP.csv validation table: 4,331 trading days


def test_sim_intraday_agrees_with_daily_and_never_changes_the_past():
    sim = SimProvider()
    daily = sim.get_bars("VALE3", end=date(2025, 6, 30), lookback=5).frame
    hourly = sim.get_bars("VALE3", "1h", end=date(2025, 6, 30), lookback=35).frame
    for day, row in daily.iterrows():
        bars = hourly.loc[hourly.index.normalize() == day]
        if len(bars) == 7:
            assert bars["open"].iloc[0] == pytest.approx(row["open"])
            assert bars["close"].iloc[-1] == pytest.approx(row["close"])
    later = sim.get_bars("VALE3", "1h", end=date(2025, 7, 3), lookback=70).frame
    pd.testing.assert_frame_equal(hourly, later.loc[hourly.index])


def test_as_of_cuts_the_file_before_validating_it():
    """No statistic and no split cut may come from bars after the decision date."""
    provider = CsvProvider(require_shared_data())
    bars = provider.get_bars("PETR4", end=date(2025, 6, 30))
    assert bars.report.last_bar <= "2025-06-30T23:59"
    ugpa = provider.get_bars("UGPA3", end=date(2020, 12, 30))  # its +119% jump is in 2021
    assert len(ugpa) == 300 and not any("2021" in note for note in ugpa.report.notes)


def test_yahoo_dates_with_changing_utc_offsets_keep_their_local_date(tmp_path):
    f = xpto3_frame(tmp_path, "Date,Open,High,Low,Close,Volume\n"
                              "2018-01-02 00:00:00-02:00,10,11,9,10,100\n"
                              "2018-03-01 00:00:00-03:00,10,11,9,10,100\n")
    assert list(f.index) == [pd.Timestamp("2018-01-02"), pd.Timestamp("2018-03-01")]


def test_a_malformed_profitchart_file_is_a_data_error_not_a_crash(tmp_path):
    (tmp_path / "XPTO3_B_0_60min.csv").write_text("X;;10:00:00;1;1;1;1;1;1\n")
    with pytest.raises(DataError):
        CsvProvider(tmp_path).get_bars("XPTO3", "1h")


# ------------------------------------------------------------------ validated cuts (one pass, every day's cut)

def assert_cut_is_the_validated_cut(raw: pd.DataFrame, end, tail: int, is_index: bool = False,
                                    max_jump: float = 0.40, cuts=None) -> None:
    """ValidatedCuts gives what validating the cut itself gives, frame and report, also when built from
    nothing but the rows up to ``end`` (the rows after the cut play no part)."""
    from agent.market.bars import bars_until
    from agent.market.csv_files import ValidatedCuts

    key = None if end is None else pd.Timestamp(end).date().isoformat()
    prefix = bars_until(raw, key)
    want = validate_bars(prefix.iloc[-tail:], is_index=is_index, max_jump=max_jump)
    built = [cuts or ValidatedCuts(raw, is_index=is_index, max_jump=max_jump)]
    if cuts is None and len(prefix):
        built.append(ValidatedCuts(prefix, is_index=is_index, max_jump=max_jump))
    for source in built:
        got = source.cut(key, tail)
        if got is None:  # only an empty cut is left to validate_bars
            assert want[1].rows_in == 0
            continue
        pd.testing.assert_frame_equal(got[0], want[0], check_exact=True)
        assert got[1].model_dump_json() == want[1].model_dump_json()  # counts, their order, notes, first and last


DEFECTS = ["nan_price", "non_positive", "high_below_low", "near_outside", "far_outside", "negative_volume",
           "nan_volume", "flat_zero_volume", "zero_volume", "split", "crash"]


@st.composite
def broken_daily_bars(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.005, n)), "close": close,
                          "volume": rng.integers(1, 10**6, n).astype(draw(st.sampled_from([float, int])))},
                         index=pd.DatetimeIndex(pd.bdate_range("2020-01-01", periods=n), freq=None, name="date"))
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.01
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.99
    for i, defect in enumerate(draw(st.lists(st.sampled_from([None] * 6 + DEFECTS), min_size=n, max_size=n))):
        row = frame.index[i]
        if defect == "nan_price":
            frame.loc[row, draw(st.sampled_from(["open", "high", "low", "close"]))] = np.nan
        elif defect == "non_positive":
            frame.loc[row, "low"] = 0.0
        elif defect == "high_below_low":
            frame.loc[row, ["high", "low"]] = frame.loc[row, ["low", "high"]].to_numpy()
        elif defect == "near_outside":  # rounding in the source: repaired, not dropped
            frame.loc[row, "close"] = frame.loc[row, "high"] * 1.002
        elif defect == "far_outside":
            frame.loc[row, "open"] = frame.loc[row, "high"] * 1.2
        elif defect in ("negative_volume", "nan_volume", "zero_volume") and frame["volume"].dtype == float:
            frame.loc[row, "volume"] = {"negative_volume": -5.0, "nan_volume": np.nan, "zero_volume": 0.0}[defect]
        elif defect == "flat_zero_volume":
            frame.loc[row, ["open", "high", "low", "close"]] = frame.loc[row, "close"]
            frame.loc[row, "volume"] = 0
        elif defect in ("split", "crash"):  # every later price moves: a split-like jump
            factor = 2.0 if defect == "split" else 0.5
            frame.loc[frame.index[i:], ["open", "high", "low", "close"]] *= factor
    return frame[["open", "high", "low", "close", "volume"]]


@settings(max_examples=50, deadline=None)
@given(broken_daily_bars(), st.booleans(), st.sampled_from([0.4, 0.15]), st.data())
def test_every_cut_equals_validating_the_cut_on_broken_bars(raw, is_index, max_jump, data):
    for end in [None, raw.index[0] - pd.Timedelta(days=3), *raw.index]:
        tail = data.draw(st.sampled_from([1, 2, 5, len(raw) + 3]))
        assert_cut_is_the_validated_cut(raw, end, tail, is_index, max_jump)


def test_cuts_equal_validating_the_cut_on_every_real_file():
    """Random days of every file, the BBDC4 jump as it enters the cut and as it leaves it, long and short tails."""
    from agent.market.csv_files import ValidatedCuts, _parse_csv

    daily = require_shared_data()
    rng = np.random.default_rng(11)
    for path in sorted(daily.glob("*.SA.csv")):
        raw = _parse_csv(str(path), path.stat().st_mtime_ns)
        cuts = ValidatedCuts(raw, is_index=False, max_jump=0.40)
        ends = list(raw.index[rng.integers(0, len(raw), 12)])
        if path.name == "BBDC4.SA.csv":
            jump = raw.index.get_loc(pd.Timestamp("2009-05-29"))
            ends += list(raw.index[[jump - 1, jump, jump + 1, jump + 648, jump + 649, jump + 650]])
        for end in ends:
            for tail in (650, 5):
                assert_cut_is_the_validated_cut(raw, end, tail, cuts=cuts)


@pytest.mark.slow
@pytest.mark.parametrize("ticker", ["PETR4", "VALE3", "BBDC4"])
def test_every_daily_cut_since_2019_equals_validating_it(ticker):
    """Every cut a walk-forward backtest of recent years asks for (the lookback's 650 raw rows), day by day."""
    from agent.market.csv_files import ValidatedCuts, _parse_csv

    path = require_shared_data() / f"{ticker}.SA.csv"
    raw = _parse_csv(str(path), path.stat().st_mtime_ns)
    cuts = ValidatedCuts(raw, is_index=False, max_jump=0.40)
    for end in raw.index[raw.index >= pd.Timestamp("2019-01-01")]:
        assert_cut_is_the_validated_cut(raw, end, 650, cuts=cuts)


def test_files_the_cuts_do_not_cover_are_validated_cut_by_cut(tmp_path):
    from agent.market.csv_files import ValidatedCuts

    newest_first = pd.DataFrame({"open": [10.0, 11.0], "high": [11.0, 12.0], "low": [9.0, 10.0], "close": [10.5, 11.5],
                                 "volume": [100, 200]}, index=pd.to_datetime(["2024-01-03", "2024-01-02"]))
    assert ValidatedCuts(newest_first, is_index=False, max_jump=0.4).cut("2024-01-03", 10) is None
    (tmp_path / "ODD3.SA.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-03,10,11,9,10.5,100\n"
                                          "2024-01-02,11,12,10,11.5,200\n")
    bars = CsvProvider(tmp_path).get_bars("ODD3", end=date(2024, 1, 3), lookback=10)
    assert list(bars.frame.index) == list(pd.to_datetime(["2024-01-02", "2024-01-03"]))


def test_todays_daily_bar_is_not_final_while_its_session_runs():
    """At 11:41 on a B3 session day the newest finished daily bar is the previous session's; intraday
    bars may run up to now."""
    from datetime import datetime

    from agent.market.calendar import B3_TZ
    from agent.market.validation import latest_real_bar

    during = datetime(2025, 6, 30, 11, 41, tzinfo=B3_TZ)  # a Monday session
    assert latest_real_bar(during, "1d") == pd.Timestamp("2025-06-27")
    assert latest_real_bar(datetime(2025, 6, 30, 19, 0, tzinfo=B3_TZ), "1d") == pd.Timestamp("2025-06-30")
    assert latest_real_bar(during, "1h") == pd.Timestamp("2025-06-30 11:41")


def test_the_live_sim_gives_nothing_a_real_feed_could_not_have_yet():
    from datetime import datetime

    from agent.market.calendar import B3_TZ
    from agent.market.validation import latest_real_bar

    now = datetime.now(B3_TZ)
    sim = SimProvider(seed=7)
    daily = sim.get_bars("PETR4", "1d")
    assert daily.frame.index[-1] <= latest_real_bar(now, "1d") and "future_dated" not in daily.report.dropped
    hourly = sim.get_bars("PETR4", "1h")
    assert hourly.frame.index[-1] <= pd.Timestamp(datetime.now(B3_TZ).replace(tzinfo=None))
