"""The targets of each request kind and the working calendar, cached per process.

Policies are rows in the admin (`SlaPolicy`); a kind without a row uses `DEFAULT_POLICIES`.
The calendar combines `SLA_TIMEZONE`, `SLA_HOLIDAYS` and the closures added in the admin.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings

from requests_app.models import Closure, Kind, Request, SlaPolicy
from requests_app.sla.calendar import CALENDAR, WORKING, WorkingCalendar

AT_RISK_FRACTION = 0.75
TARGET_DATE = SlaPolicy.Mode.TARGET_DATE
RESPONSE, RESOLUTION = "response", "resolution"
TIMERS = (RESPONSE, RESOLUTION)

# (response target, mode), (resolution target, mode) per kind.
DEFAULT_POLICIES: dict[str, tuple[tuple[timedelta | None, str], tuple[timedelta | None, str]]] = {
    Kind.CREATE: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.SUSPEND: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.RESUME: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.TEARDOWN: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.ENABLE_EXECUTORS: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.UPGRADE: ((None, CALENDAR), (timedelta(days=7), CALENDAR)),
    Kind.FEATURE: ((timedelta(hours=24), CALENDAR), (None, TARGET_DATE)),
    Kind.ACCESS: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
}

Policies = dict[str, SlaPolicy]


@dataclass(frozen=True)
class Target:
    seconds: float | None  # None: no target (a feature before set_target)
    mode: str  # calendar or working


CACHE_SECONDS = 30
T = TypeVar("T")
_caches: "list[TimedCache[Any]]" = []


class TimedCache(Generic[T]):
    """A value read from the database at most every CACHE_SECONDS per process (policies and
    closures change rarely, and every page and sweep needs them). `invalidate_cache()` drops
    every such value at once, whichever app keeps its targets in one."""

    def __init__(self, loader: Callable[[], T]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = 0.0
        _caches.append(self)

    def get(self) -> T:
        with self._lock:
            if self._value is not None and time.monotonic() - self._at < CACHE_SECONDS:
                return self._value
        value = self._loader()
        with self._lock:
            self._value, self._at = value, time.monotonic()
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._at = 0.0


def invalidate_cache() -> None:
    for cache in _caches:
        cache.invalidate()


def _load() -> tuple[WorkingCalendar, Policies]:
    calendar = WorkingCalendar(
        settings.SLA_TIMEZONE,
        settings.SLA_HOLIDAYS,
        closures=list(Closure.objects.values_list("date", flat=True)),
    )
    return calendar, {p.kind: p for p in SlaPolicy.objects.all()}


_calendar_and_policies = TimedCache(_load)


def load() -> tuple[WorkingCalendar, Policies]:
    """The calendar and the policies, read again at most every CACHE_SECONDS."""
    return _calendar_and_policies.get()


def get_calendar() -> WorkingCalendar:
    return load()[0]


def target_seconds(
    kind: str,
    which: str,
    started: float | None,
    target_due_at: float | None,
    policies: Policies,
) -> tuple[float, str] | None:
    """(seconds, mode) of a timer, or None: `started` and `target_due_at` in epoch seconds."""
    policy = policies.get(kind)
    if policy is not None:
        target, mode = (
            (policy.response_target, policy.response_mode)
            if which == RESPONSE
            else (policy.resolution_target, policy.resolution_mode)
        )
    else:
        target, mode = DEFAULT_POLICIES[kind][0 if which == RESPONSE else 1]
    if mode == TARGET_DATE:
        if target_due_at is None or started is None:
            return None
        return target_due_at - started, CALENDAR
    if target is None:
        return None
    return target.total_seconds(), mode


def target_for(request: Request, which: str, policies: Policies | None = None) -> Target | None:
    """The timer's target for this request, or None when the kind has no such timer."""
    policies = policies if policies is not None else load()[1]
    started = _epoch(request.resolution_started_at)
    found = target_seconds(request.kind, which, started, _epoch(request.target_due_at), policies)
    if found is None:
        # A feature before set_target still has a (running) resolution timer, without target.
        policy = policies.get(request.kind)
        mode = policy.resolution_mode if policy else DEFAULT_POLICIES[request.kind][1][1]
        if which == RESOLUTION and mode == TARGET_DATE:
            return Target(None, CALENDAR)
        return None
    return Target(*found)


def is_working(request: Request, which: str, policies: Policies | None = None) -> bool:
    """Whether this timer counts working days (pages say "working days" and stop the bar)."""
    target = target_for(request, which, policies)
    return target is not None and target.mode == WORKING


def working_kinds(which: str) -> list[str]:
    """The kinds whose `which` timer counts working days."""
    return [kind for kind in Kind.values if is_working(Request(kind=kind), which)]


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()
