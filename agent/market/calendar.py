"""The B3 trading calendar: which days are sessions and when the regular session opens and closes.

The agent needs it to tell a stale daily bar from a weekend or a holiday, and to know whether
the market is open now. Sessions, holidays and late opens (Ash Wednesday opens at 13:00) come
from exchange_calendars' ``BVMF`` calendar. Its close time is static (18:00) and so wrong for
most of the year: B3 follows New York, and the regular cash-equity session (closing call
included) ends at 17:00 Brasília time while the US is on daylight saving time and at 18:00
while it is on standard time. The close is therefore computed here from US DST. Brazil has
had no DST of its own since 2019, so the calendar starts on 2019-11-04; the tests check the
rule against real 60-minute bars for 2024-2025. Days outside the calendar raise ValueError.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left, bisect_right
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

B3_TZ = ZoneInfo("America/Sao_Paulo")  # the exchange's time zone: every B3-local date and time in the agent
NEW_YORK = ZoneInfo("America/New_York")
XCALS_NAME = "BVMF"
RULE_START = date(2019, 11, 4)  # first session after Brazil ended its own DST
CLOSE_US_DST = time(17)
CLOSE_US_STANDARD = time(18)


def us_on_dst(day: date) -> bool:
    """Whether New York is on daylight saving time on ``day`` (US switches happen on Sundays)."""
    return bool(datetime.combine(day, time(12), NEW_YORK).dst())


def _day(day: date) -> date:
    if isinstance(day, datetime):
        raise TypeError(f"expected a date, got the datetime {day.isoformat()}: pass its São Paulo .date()")
    return day


def _local(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()}: pass a timezone-aware datetime")
    return now.astimezone(B3_TZ)


class B3Calendar:
    """B3 sessions with the regular session's real open and close, all in America/Sao_Paulo."""

    def __init__(self, start: date = RULE_START, end: date | None = None) -> None:
        if start < RULE_START:
            raise ValueError(f"start {start} is before {RULE_START}: the close-time rule does not hold then")
        import exchange_calendars as xcals  # here, not at the top: importing B3_TZ stays cheap (the JSONL sink does)

        with warnings.catch_warnings():  # exchange_calendars 4.13 trips pandas 3.1 deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            cal = xcals.get_calendar(XCALS_NAME, start=start, end=end)
        self._days: list[date] = [ts.date() for ts in cal.sessions]
        self._set = frozenset(self._days)
        self._opens: dict[date, time] = {
            ts.date(): op.tz_convert(B3_TZ).time() for ts, op in cal.opens.items()
        }
        self.first, self.last = self._days[0], self._days[-1]

    def _check_range(self, day: date) -> date:
        if not self.first <= _day(day) <= self.last:
            raise ValueError(f"{day} is outside the B3 calendar's range {self.first} .. {self.last}")
        return day

    def is_session(self, day: date) -> bool:
        """Whether B3 trades on ``day``."""
        return self._check_range(day) in self._set

    def sessions(self, start: date, end: date) -> list[date]:
        """Sessions from ``start`` to ``end``, both included (days outside the range are ignored)."""
        return self._days[bisect_left(self._days, _day(start)) : bisect_right(self._days, _day(end))]

    def session_open(self, day: date) -> datetime:
        """The regular session's open (10:00, or 13:00 on Ash Wednesday)."""
        if not self.is_session(day):
            raise ValueError(f"{day} is not a B3 session")
        return datetime.combine(day, self._opens[day], B3_TZ)

    def session_close(self, day: date) -> datetime:
        """The regular session's close, closing call included: 17:00 on US DST, else 18:00."""
        if not self.is_session(day):
            raise ValueError(f"{day} is not a B3 session")
        return datetime.combine(day, CLOSE_US_DST if us_on_dst(day) else CLOSE_US_STANDARD, B3_TZ)

    def is_open(self, now: datetime) -> bool:
        """Whether the regular session is open at ``now`` (open included, close excluded)."""
        local = _local(now)
        day = local.date()
        return self.is_session(day) and self.session_open(day) <= local < self.session_close(day)

    def previous_session(self, day: date) -> date:
        """The latest session strictly before ``day``."""
        i = bisect_left(self._days, self._check_range(day))
        if i == 0:
            raise ValueError(f"no B3 session before {day} in the calendar (it starts on {self.first})")
        return self._days[i - 1]

    def next_session(self, day: date) -> date:
        """The earliest session strictly after ``day``."""
        i = bisect_right(self._days, self._check_range(day))
        if i == len(self._days):
            raise ValueError(f"no B3 session after {day} in the calendar (it ends on {self.last})")
        return self._days[i]

    def last_complete_session(self, now: datetime) -> date:
        """The latest session whose close is at or before ``now``."""
        local = _local(now)
        day = local.date()
        if self.is_session(day) and self.session_close(day) <= local:
            return day
        return self.previous_session(day)

    def next_open(self, now: datetime) -> datetime:
        """The current session's open while open, else the first session open after ``now``."""
        local = _local(now)
        day = local.date()
        if self.is_session(day) and local < self.session_close(day):
            return self.session_open(day)
        return self.session_open(self.next_session(day))

    def expected_last_daily_bar(self, now: datetime) -> date:
        """The date of the newest daily bar that should exist at ``now``."""
        return self.last_complete_session(now)

    def daily_bar_is_stale(self, last_bar: date, now: datetime, grace_sessions: int = 0) -> bool:
        """Whether more than ``grace_sessions`` complete sessions are missing after ``last_bar``."""
        if grace_sessions < 0:
            raise ValueError(f"grace_sessions must be >= 0, got {grace_sessions}")
        expected = self.last_complete_session(now)
        missing = self.sessions(_day(last_bar) + timedelta(days=1), expected)
        return len(missing) > grace_sessions


_DEFAULT: list[B3Calendar] = []


def default_calendar() -> B3Calendar:
    """The shared calendar (2019-11-04 to about a year ahead). Rebuilt when today comes within 30 days of its
    end, so an agent left running for more than a year keeps gating on real sessions."""
    if not _DEFAULT or _DEFAULT[0].last - date.today() < timedelta(days=30):
        _DEFAULT[:] = [B3Calendar()]
    return _DEFAULT[0]


def b3_timestamp(moment: datetime) -> str:
    """The one timestamp format of records, trades and the kill switch: B3-local ISO-8601 to the second,
    with its offset (``2025-06-30T18:00:00-03:00``), whatever the machine's time zone."""
    return moment.astimezone(B3_TZ).isoformat(timespec="seconds")
