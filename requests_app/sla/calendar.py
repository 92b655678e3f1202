"""Working-day arithmetic for SLA clocks. Pure Python: no Django here.

A clock runs either in calendar time (every second counts) or in working time: Monday to Friday,
except holidays and closures, each working day counting from 00:00 to 24:00 local time (so a
working day that loses an hour to a DST change has 23 hours). Pauses are cut out of the time
the clock runs. All instants are timezone-aware.

Working time is answered from a table built once per calendar: the working days between
FIRST_YEAR and LAST_YEAR merged into intervals, with the working seconds before each. W(t), the
working seconds from the table's start to t, is then one bisection, and so is its inverse; the
elapsed time between two instants is W(b) - W(a). That keeps a bulk recompute of 100,000 timers
in seconds.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

CALENDAR = "calendar"
WORKING = "working"
FIRST_YEAR, LAST_YEAR = 1995, 2065
# A pause: (begin, end or None while it lasts), as datetimes or epoch seconds.
Pause = tuple[datetime | float, datetime | float | None]


def parse_holidays(spec: str | None) -> tuple[str | None, str | None]:
    """'US' or 'US-CA' (country, optional subdivision); '' or 'none' for no holidays."""
    spec = (spec or "").strip()
    if not spec or spec.lower() == "none":
        return None, None
    country, _, subdivision = spec.partition("-")
    return country.upper(), (subdivision.upper() or None)


@lru_cache(maxsize=8)
def holiday_dates(country: str | None, subdivision: str | None) -> frozenset[date]:
    """Every holiday of the table's years, observed days included."""
    if country is None:
        return frozenset()
    years = range(FIRST_YEAR - 1, LAST_YEAR + 2)
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdivision, years=years))


def _epoch(instant: datetime) -> float:
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: SLA arithmetic needs aware instants")
    return instant.timestamp()


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class WorkingCalendar:
    def __init__(
        self,
        timezone: str = "America/Los_Angeles",
        holidays: str | None = "US",
        closures: Iterable[date] = (),
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.holidays = holiday_dates(*parse_holidays(holidays))  # unknown country: fails now
        self.closures = frozenset(closures)
        # The working-time table, built on first use (see _build).
        self._built = False
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._before: list[float] = []
        self._after: list[float] = []

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closures and day not in self.holidays

    def is_working_time(self, instant: datetime) -> bool:
        return self.is_working_day(instant.astimezone(self.tz).date())

    def _day_start(self, day: date) -> float:
        return datetime.combine(day, time(0), tzinfo=self.tz).timestamp()

    def _build(self) -> None:
        starts: list[float] = []
        ends: list[float] = []
        day, last = date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)
        one = timedelta(days=1)
        while day <= last:
            if self.is_working_day(day):
                begin, end = self._day_start(day), self._day_start(day + one)
                if ends and ends[-1] == begin:
                    ends[-1] = end
                else:
                    starts.append(begin)
                    ends.append(end)
            day += one
        before: list[float] = []
        after: list[float] = []
        total = 0.0
        for begin, end in zip(starts, ends, strict=True):
            before.append(total)
            total += end - begin
            after.append(total)
        self._starts, self._ends, self._before, self._after = starts, ends, before, after
        self._built = True

    def _check(self, seconds: float) -> None:
        if not self._built:
            self._build()
        if not self._starts or not (self._starts[0] <= seconds <= self._ends[-1]):
            raise ValueError(f"{_instant(seconds)} is outside {FIRST_YEAR}-{LAST_YEAR}")

    def working_before(self, seconds: float) -> float:
        """W(t): working seconds from the table's start to the instant t (epoch seconds)."""
        self._check(seconds)
        i = bisect_right(self._starts, seconds) - 1
        if i < 0:
            return 0.0
        return self._before[i] + min(seconds, self._ends[i]) - self._starts[i]

    def instant_after_working(self, amount: float) -> float:
        """The earliest instant t with W(t) = amount (the end of that much working time)."""
        if not self._built:
            self._build()
        i = bisect_left(self._after, amount)
        if i >= len(self._after):
            raise ValueError("the target lies beyond the calendar's last year")
        return self._starts[i] + (amount - self._before[i])

    def next_working(self, seconds: float) -> float:
        """The first instant at or after t (epoch seconds) that is working time."""
        self._check(seconds)
        i = bisect_right(self._starts, seconds) - 1
        if i >= 0 and seconds < self._ends[i]:
            return seconds
        if i + 1 >= len(self._starts):
            raise ValueError("the instant lies beyond the calendar's last year")
        return self._starts[i + 1]


class _Clock:
    """W(t) and its inverse for one mode: identity for calendar time, the table for working."""

    to_work: Callable[[float], float]
    from_work: Callable[[float], float]

    def __init__(self, mode: str, calendar: WorkingCalendar | None) -> None:
        if mode == WORKING:
            if calendar is None:
                raise ValueError("a working-time clock needs a calendar")
            self.to_work, self.from_work = calendar.working_before, calendar.instant_after_working
        elif mode == CALENDAR:
            self.to_work = self.from_work = float
        else:
            raise ValueError(f"unknown clock mode {mode!r}")


def _spans(start: float, pauses: Iterable[Pause]) -> list[tuple[float, float | None]]:
    """Pauses as sorted, merged epoch spans clipped to begin at `start`; an open one ends at
    None (and swallows every later one). Pauses may be given as datetimes or epoch seconds."""
    merged: list[tuple[float, float | None]] = []
    for begin, end in sorted(pauses, key=lambda p: p[0]):
        b = max(begin if isinstance(begin, float) else _epoch(begin), start)
        e = None if end is None else (end if isinstance(end, float) else _epoch(end))
        if e is not None and e <= b:
            continue
        if merged and (merged[-1][1] is None or b <= merged[-1][1]):
            last_b, last_e = merged[-1]
            merged[-1] = (last_b, None if e is None or last_e is None else max(last_e, e))
        else:
            merged.append((b, e))
    return merged


def elapsed_seconds(
    mode: str,
    start: datetime,
    until: datetime,
    calendar: WorkingCalendar | None = None,
    pauses: Iterable[Pause] = (),
) -> float:
    """Seconds the clock ran between `start` and `until`, paused time excluded."""
    s, u = _epoch(start), _epoch(until)
    if u <= s:
        return 0.0
    clock = _Clock(mode, calendar)
    total = clock.to_work(u) - clock.to_work(s)
    for b, e in _spans(s, pauses):
        if b >= u:
            break
        e = u if e is None else min(e, u)
        total -= clock.to_work(e) - clock.to_work(b)
    return total


def due_epoch(
    mode: str,
    start: float,
    target_seconds: float,
    calendar: WorkingCalendar | None = None,
    pauses: Sequence[Pause] = (),
) -> float | None:
    """due_instant on epoch seconds (the bulk recompute's fast path): `start` and the pauses
    are floats; returns a float, or None while a pause is open."""
    if target_seconds <= 0:
        return start
    clock = _Clock(mode, calendar)
    need, cursor = float(target_seconds), start
    if pauses:
        for b, e in _spans(start, pauses):
            available = clock.to_work(b) - clock.to_work(cursor) if b > cursor else 0.0
            if available >= need:
                break
            need -= available
            if e is None:
                return None
            cursor = max(cursor, e)
    return clock.from_work(clock.to_work(cursor) + need)


def breach_epoch(
    mode: str,
    due: float,
    calendar: WorkingCalendar | None = None,
    pauses: Sequence[Pause] = (),
) -> float | None:
    """The instant after which a clock that reached its target at `due` has run past it: the
    first instant at or after `due` at which the clock runs again. For calendar time that is
    `due` itself (unless a pause holds the clock); for working time, the start of the next
    working stretch: a target used up at Saturday 00:00 is exceeded from Monday 00:00. A timer
    is breached at t exactly when t > breach (elapsed > target). None: held by an open pause."""
    spans = _spans(due, pauses)
    t = due
    for _ in range(len(spans) + 2):
        if mode == WORKING:
            if calendar is None:
                raise ValueError("a working-time clock needs a calendar")
            t = calendar.next_working(t)
        holding = next(((b, e) for b, e in spans if b <= t and (e is None or t < e)), None)
        if holding is None:
            return t
        if holding[1] is None:
            return None
        t = holding[1]
    return t


def due_instant(
    mode: str,
    start: datetime,
    target_seconds: float,
    calendar: WorkingCalendar | None = None,
    pauses: Sequence[Pause] = (),
) -> datetime | None:
    """The instant at which the clock will have run `target_seconds`, or None while a pause is
    open (nobody can say when the clock runs again)."""
    due = due_epoch(mode, _epoch(start), target_seconds, calendar, pauses)
    return None if due is None else _instant(due)
