"""B3 calendar: 2025 holidays and sessions, the US-DST close, clock helpers, and real 60-minute bars."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from agent.market.calendar import B3_TZ as SAO_PAULO
from agent.market.calendar import B3Calendar, default_calendar

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
INTRADAY_DIR = SHARED_DATA / "b3" / "intraday"


@pytest.fixture(scope="module")
def cal() -> B3Calendar:
    return default_calendar()


def sp(*args: int) -> datetime:
    return datetime(*args, tzinfo=SAO_PAULO)


def bar_times(path: Path) -> dict[date, list[time]]:
    """Bar open times per day from a ProfitChart export (symbol;dd/mm/yyyy;HH:MM:SS;...)."""
    days: dict[date, list[time]] = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.reader(f, delimiter=";"):
            days[datetime.strptime(row[1], "%d/%m/%Y").date()].append(time.fromisoformat(row[2]))
    return days


def require_intraday(name: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return INTRADAY_DIR / name


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 1),
        date(2025, 3, 3),  # Carnival Monday
        date(2025, 3, 4),  # Carnival Tuesday
        date(2025, 4, 18),  # Good Friday
        date(2025, 4, 21),  # Tiradentes
        date(2025, 5, 1),
        date(2025, 6, 19),  # Corpus Christi
        date(2025, 11, 20),  # Consciência Negra, a national holiday since 2024
        date(2025, 12, 24),
        date(2025, 12, 25),
        date(2025, 12, 31),
    ],
)
def test_2025_holidays_are_closed(cal, day):
    assert day.weekday() < 5
    assert not cal.is_session(day)
    with pytest.raises(ValueError, match=str(day)):
        cal.session_open(day)
    with pytest.raises(ValueError, match=str(day)):
        cal.session_close(day)


@pytest.mark.parametrize("day", [date(2025, 1, 2), date(2025, 3, 5), date(2025, 6, 30), date(2025, 12, 30)])
def test_2025_sessions_are_open(cal, day):
    assert cal.is_session(day)


def test_weekends_are_closed(cal):
    assert not cal.is_session(date(2025, 6, 28))
    assert not cal.is_session(date(2025, 6, 29))
    assert cal.sessions(date(2025, 6, 28), date(2025, 6, 29)) == []
    assert cal.sessions(date(2025, 7, 2), date(2025, 7, 1)) == []


def test_2025_has_250_sessions_like_cotahist(cal):
    # B3's official COTAHIST_A2025 daily file has 250 sessions (see the shared data README).
    sessions = cal.sessions(date(2025, 1, 1), date(2025, 12, 31))
    assert len(sessions) == 250
    assert sessions[0] == date(2025, 1, 2) and sessions[-1] == date(2025, 12, 30)
    assert sessions == sorted(set(sessions))


def test_ash_wednesday_opens_at_13(cal):
    for day in (date(2024, 2, 14), date(2025, 3, 5)):
        assert cal.session_open(day) == sp(day.year, day.month, day.day, 13)
        assert cal.session_close(day) == sp(day.year, day.month, day.day, 18)  # before US DST starts
    assert cal.session_open(date(2025, 3, 6)) == sp(2025, 3, 6, 10)


def test_close_follows_us_daylight_saving_time(cal):
    assert cal.session_close(date(2025, 1, 15)) == sp(2025, 1, 15, 18)
    assert cal.session_close(date(2025, 7, 15)) == sp(2025, 7, 15, 17)
    # US DST 2025 runs from Sunday 2025-03-09 to Sunday 2025-11-02.
    assert cal.session_close(date(2025, 3, 7)).hour == 18
    assert cal.session_close(date(2025, 3, 10)).hour == 17
    assert cal.session_close(date(2025, 10, 31)).hour == 17
    assert cal.session_close(date(2025, 11, 3)).hour == 18
    assert cal.session_open(date(2025, 7, 15)) == sp(2025, 7, 15, 10)
    assert cal.session_close(date(2025, 7, 15)).utcoffset() == timedelta(hours=-3)


def test_is_open(cal):
    assert cal.is_open(sp(2025, 7, 1, 11))
    assert not cal.is_open(sp(2025, 7, 1, 9))
    assert cal.is_open(sp(2025, 7, 1, 10))  # the open is included
    assert not cal.is_open(sp(2025, 7, 1, 17))  # the close is not
    assert cal.is_open(sp(2025, 1, 15, 17, 30))  # US standard time: open until 18:00
    assert not cal.is_open(sp(2025, 7, 1, 17, 30))
    assert not cal.is_open(sp(2025, 6, 28, 11))  # Saturday
    assert not cal.is_open(sp(2025, 3, 3, 11))  # Carnival
    assert not cal.is_open(sp(2025, 3, 5, 11))  # Ash Wednesday before 13:00
    assert cal.is_open(sp(2025, 3, 5, 13, 30))
    assert cal.is_open(datetime(2025, 7, 1, 14, 0, tzinfo=timezone.utc))  # 11:00 in São Paulo
    assert not cal.is_open(datetime(2025, 7, 1, 20, 30, tzinfo=timezone.utc))  # 17:30 in São Paulo


def test_last_complete_session(cal):
    assert cal.last_complete_session(sp(2025, 6, 30, 9)) == date(2025, 6, 27)  # Monday morning -> Friday
    assert cal.last_complete_session(sp(2025, 7, 1, 16, 59)) == date(2025, 6, 30)
    assert cal.last_complete_session(sp(2025, 7, 1, 17)) == date(2025, 7, 1)
    assert cal.last_complete_session(sp(2025, 1, 15, 17, 30)) == date(2025, 1, 14)
    assert cal.last_complete_session(sp(2025, 4, 22, 9)) == date(2025, 4, 17)  # Good Friday + Tiradentes
    assert cal.last_complete_session(sp(2025, 3, 5, 12)) == date(2025, 2, 28)  # after Carnival
    assert cal.expected_last_daily_bar(sp(2025, 6, 29, 12)) == date(2025, 6, 27)


def test_next_open(cal):
    assert cal.next_open(sp(2025, 6, 27, 19)) == sp(2025, 6, 30, 10)  # Friday evening -> Monday
    assert cal.next_open(sp(2025, 2, 28, 19)) == sp(2025, 3, 5, 13)  # Carnival, then Ash Wednesday
    assert cal.next_open(sp(2025, 6, 30, 9)) == sp(2025, 6, 30, 10)
    assert cal.next_open(sp(2025, 6, 30, 11)) == sp(2025, 6, 30, 10)  # open: the current session's open
    assert cal.next_open(sp(2025, 6, 30, 17)) == sp(2025, 7, 1, 10)
    assert cal.next_open(sp(2025, 12, 30, 18)) == sp(2026, 1, 2, 10)
    assert cal.next_open(datetime(2025, 6, 27, 23, tzinfo=timezone.utc)).tzinfo is SAO_PAULO


def test_daily_bar_is_stale(cal):
    monday_morning = sp(2025, 6, 30, 9)
    assert not cal.daily_bar_is_stale(date(2025, 6, 27), monday_morning)
    assert cal.daily_bar_is_stale(date(2025, 6, 26), monday_morning)
    assert not cal.daily_bar_is_stale(date(2025, 6, 26), monday_morning, grace_sessions=1)
    monday_evening = sp(2025, 6, 30, 17)
    assert cal.daily_bar_is_stale(date(2025, 6, 27), monday_evening)
    assert not cal.daily_bar_is_stale(date(2025, 6, 27), monday_evening, grace_sessions=1)
    assert not cal.daily_bar_is_stale(date(2025, 2, 28), sp(2025, 3, 5, 17, 30))  # Ash Wed not over
    assert cal.daily_bar_is_stale(date(2025, 2, 28), sp(2025, 3, 6, 9))
    assert not cal.daily_bar_is_stale(date(2025, 7, 1), monday_morning)  # newer than expected
    with pytest.raises(ValueError, match="grace_sessions"):
        cal.daily_bar_is_stale(date(2025, 6, 27), monday_morning, grace_sessions=-1)


def test_naive_datetimes_are_rejected(cal):
    naive = datetime(2025, 7, 1, 11)
    for call in (
        cal.is_open,
        cal.last_complete_session,
        cal.next_open,
        cal.expected_last_daily_bar,
        lambda now: cal.daily_bar_is_stale(date(2025, 6, 30), now),
    ):
        with pytest.raises(ValueError, match="naive"):
            call(naive)


def test_dates_only_and_within_range(cal):
    with pytest.raises(TypeError, match="datetime"):
        cal.is_session(sp(2025, 7, 1, 11))
    with pytest.raises(ValueError, match="outside"):
        cal.is_session(date(2015, 1, 5))
    with pytest.raises(ValueError, match="before"):
        B3Calendar(start=date(2015, 1, 1))


def test_default_calendar_is_cached():
    assert default_calendar() is default_calendar()


def test_real_60min_bars_match_the_session_hours(cal):
    """PETR4 60-min bars 2024-2025: every session present, and its hourly bars span open..close exactly.

    Bars on the hour are regular bars; off-hour prints (17:15 / 17:30 on US-DST days, 18:15 and
    19:25 otherwise) are after-market and must all start at or after the computed close.
    """
    days = bar_times(require_intraday("PETR4_B_0_60min.csv"))
    assert cal.sessions(min(days), max(days)) == sorted(days)
    seen_closes = set()
    for day, times in days.items():
        open_, close = cal.session_open(day).time(), cal.session_close(day).time()
        hourly = sorted(t for t in times if t.minute == 0)
        assert hourly == [time(h) for h in range(open_.hour, close.hour)], day
        assert all(t >= close for t in times if t.minute != 0), day
        latest_regular = max(t for t in times if t < time(18))
        assert (latest_regular == time(17)) == (close == time(18)), day
        seen_closes.add(close)
    assert seen_closes == {time(17), time(18)}


@pytest.mark.parametrize("name", ["ITUB4_B_0_60min.csv", "VALE3_B_0_60min.csv", "IBOV_B_0_60min.csv"])
def test_other_60min_files_end_at_the_computed_close(cal, name):
    """Other symbols miss a few early bars, but the last hourly bar always opens an hour before the close."""
    days = bar_times(require_intraday(name))
    assert cal.sessions(min(days), max(days)) == sorted(days)
    for day, times in days.items():
        close = cal.session_close(day)
        assert max(t for t in times if t.minute == 0) == (close - timedelta(hours=1)).time(), day


def test_the_shared_calendar_is_rebuilt_before_it_runs_out():
    from datetime import date, timedelta

    import agent.market.calendar as b3

    short = b3.B3Calendar(end=date.today() + timedelta(days=10))
    b3._DEFAULT[:] = [short]
    fresh = b3.default_calendar()
    assert fresh is not short and fresh.last > date.today() + timedelta(days=300)
    assert b3.default_calendar() is fresh  # built once, then shared
