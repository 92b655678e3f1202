"""What a timer's status is: the one rule, in Python (`decide`) and in SQL (`breached_q`,
`at_risk_q`, and the dashboards' statement, which spells the same CASE), all reading the
instants stored on the request row by sla/timers.py.

A timer is `pending` (not started), `running`, `paused`, `met` (stopped with elapsed <= target),
`breached` (elapsed > target: the clock ran past `*_breach_at`, whether it is still running, was
paused or stopped after it) or `cancelled` (the request ended before the clock stopped), and
`at_risk` while it runs, not breached, with 75% of its target used (past `*_warn_at`).

`*_breach_at` is the instant after which elapsed time exceeds the target: the due instant for
calendar time, but for working days the start of the next working stretch (a target used up at
Saturday 00:00 is exceeded from Monday 00:00). So a request done that Saturday is met, and the
breach alert goes out on Monday, on every surface alike.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from requests_app.models import Request
from requests_app.sla import calendar as sla_calendar
from requests_app.sla.policies import (
    RESOLUTION,
    RESPONSE,
    TIMERS,
    Policies,
    Target,
    load,
    target_for,
)
from requests_app.sla.timers import pauses_of

QS = TypeVar("QS", bound=QuerySet[Request])


PENDING, RUNNING, PAUSED, AT_RISK = "pending", "running", "paused", "at_risk"
MET, BREACHED, CANCELLED = "met", "breached", "cancelled"


def decide(
    started: datetime | None,
    stopped: datetime | None,
    paused_at: datetime | None,
    breach_at: datetime | None,
    warn_at: datetime | None,
    ended: datetime | None,
    now: datetime,
) -> str | None:
    """The status of one timer from what its request row stores: None when its clock never
    started, else met, breached, cancelled, paused, at_risk or running. The one rule: the SQL
    of `breached_q`, `at_risk_q` and the dashboards says the same."""
    if started is None:
        return None
    if stopped is not None:
        return BREACHED if breach_at is not None and stopped > breach_at else MET
    if ended is not None:
        return CANCELLED
    if paused_at is not None:
        return BREACHED if breach_at is not None and paused_at > breach_at else PAUSED
    if breach_at is not None and now > breach_at:
        return BREACHED
    if warn_at is not None and warn_at <= now:
        return AT_RISK
    return RUNNING


def timer_status(request: Request, which: str, now: datetime) -> str | None:
    """`decide` for one timer of a request (its resolution may be paused; its response not)."""
    return clock_of(request, which).status(now)


def _iso(value: datetime | None, zone: tzinfo) -> str | None:
    """timezone.localtime(value).isoformat() with the current time zone looked up once by the
    caller: a list draws two timers for each of 50 requests."""
    return value.astimezone(zone).isoformat() if value else None


@dataclass(frozen=True)
class Clock:
    """What a row stores of one timer, whoever's row it is (a request's, an incident's): its
    start and stop, the stored 75% and breach instants, its pauses, and when the row ended
    (rejected or cancelled) if it ended before the clock stopped."""

    started: datetime | None
    stopped: datetime | None
    warn_at: datetime | None
    breach_at: datetime | None
    pauses: Sequence[tuple[datetime, datetime | None]] = ()
    paused_at: datetime | None = None
    ended: datetime | None = None

    def status(self, now: datetime) -> str | None:
        return decide(
            self.started,
            self.stopped,
            self.paused_at,
            self.breach_at,
            self.warn_at,
            self.ended,
            now,
        )


def clock_json(
    clock: Clock,
    target: Target,
    now: datetime,
    calendar: sla_calendar.WorkingCalendar,
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """The JSON of one timer (docs/sla.md): the one shape every surface serves. Its instants
    are written in `zone` (the current time zone when None)."""
    started, stopped, pauses = clock.started, clock.stopped, list(clock.pauses)
    paused = bool(pauses and pauses[-1][1] is None and stopped is None)
    cancelled = clock.ended is not None and stopped is None
    if started is None:
        return {
            "started_at": None,
            "due_at": None,
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 0,
            "remaining_seconds": int(target.seconds) if target.seconds is not None else None,
            "status": CANCELLED if cancelled else PENDING,
            "at_risk": False,
        }
    until = stopped or (clock.ended if cancelled else None) or now
    until = max(until, started)
    elapsed = sla_calendar.elapsed_seconds(target.mode, started, until, calendar, pauses)
    due = None
    remaining = None
    if target.seconds is not None:
        remaining = target.seconds - elapsed
        if not paused:
            due = sla_calendar.due_instant(target.mode, started, target.seconds, calendar, pauses)
    decided = clock.status(now)
    at_risk = decided == AT_RISK
    status = RUNNING if at_risk else decided
    zone = zone or timezone.get_current_timezone()
    return {
        "started_at": _iso(started, zone),
        "due_at": _iso(due, zone),
        "stopped_at": _iso(stopped, zone),
        "paused": paused,
        "elapsed_seconds": int(elapsed),
        "remaining_seconds": int(remaining) if remaining is not None else None,
        "status": status,
        "at_risk": at_risk,
    }


# The columns of a request that its timers' JSON reads (`clock_of`, `target_for`).
TIMER_COLUMNS = [
    "kind",
    "target_due_at",
    "ended_at",
    *(f"{which}_{part}" for which in TIMERS for part in ("started_at", "stopped_at", "warn_at")),
    *(f"{which}_breach_at" for which in TIMERS),
    "resolution_pauses",
    "resolution_paused_at",
]


def clock_of(request: Request, which: str) -> Clock:
    """One timer of a request (its resolution may be paused; its response not)."""
    resolution = which == RESOLUTION
    return Clock(
        started=getattr(request, f"{which}_started_at"),
        stopped=getattr(request, f"{which}_stopped_at"),
        warn_at=getattr(request, f"{which}_warn_at"),
        breach_at=getattr(request, f"{which}_breach_at"),
        pauses=pauses_of(request) if resolution else (),
        paused_at=request.resolution_paused_at if resolution else None,
        ended=request.ended_at,
    )


def timer_json(
    request: Request,
    which: str,
    now: datetime | None = None,
    calendar: sla_calendar.WorkingCalendar | None = None,
    policies: Policies | None = None,
    zone: tzinfo | None = None,
) -> dict[str, Any] | None:
    if calendar is None or policies is None:
        calendar, policies = load()
    target = target_for(request, which, policies)
    if target is None:
        return None
    return clock_json(clock_of(request, which), target, now or timezone.now(), calendar, zone)


def sla_json(
    request: Request,
    now: datetime | None = None,
    calendar: sla_calendar.WorkingCalendar | None = None,
    policies: Policies | None = None,
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """Both timers' JSON. A page of requests passes the calendar, the policies and the time
    zone it looked up once (`load()`, `timezone.get_current_timezone()`)."""
    if calendar is None or policies is None:
        calendar, policies = load()
    zone = zone or timezone.get_current_timezone()
    return sla_and_working(request, now or timezone.now(), calendar, policies, zone)[0]


def sla_and_working(
    request: Request,
    now: datetime,
    calendar: sla_calendar.WorkingCalendar,
    policies: Policies,
    zone: tzinfo,
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Both timers' JSON (`sla_json`) and, per timer, whether it counts working days (as
    `policies.is_working` says), each timer's target worked out once: what a table of requests
    draws its bars from."""
    sla: dict[str, Any] = {}
    working: dict[str, bool] = {}
    for which in TIMERS:
        target = target_for(request, which, policies)
        working[which] = target is not None and target.mode == sla_calendar.WORKING
        sla[which] = (
            None
            if target is None
            else clock_json(clock_of(request, which), target, now, calendar, zone)
        )
    return sla, working


def _breached_q(which: str, now: datetime) -> Q:
    started = Q(**{f"{which}_started_at__isnull": False, f"{which}_breach_at__isnull": False})
    stopped_late = Q(**{f"{which}_stopped_at__gt": F(f"{which}_breach_at")})
    running = Q(**{f"{which}_stopped_at__isnull": True, "ended_at__isnull": True})
    if which == RESOLUTION:
        paused_late = Q(
            resolution_paused_at__isnull=False,
            resolution_paused_at__gt=F("resolution_breach_at"),
        )
        still_running = Q(resolution_paused_at__isnull=True, resolution_breach_at__lt=now)
        return started & (stopped_late | (running & (paused_late | still_running)))
    return started & (stopped_late | (running & Q(response_breach_at__lt=now)))


def breached_q(now: datetime) -> Q:
    """Requests with a timer whose status is `breached` at `now` (see `decide`)."""
    return _breached_q(RESPONSE, now) | _breached_q(RESOLUTION, now)


def at_risk_q(now: datetime) -> Q:
    """Requests with a timer whose JSON says `at_risk` at `now` (see `decide`)."""
    live = Q(ended_at__isnull=True)
    response = Q(
        response_stopped_at__isnull=True,
        response_warn_at__lte=now,
        response_breach_at__gte=now,
    )
    resolution = Q(
        resolution_stopped_at__isnull=True,
        resolution_paused_at__isnull=True,
        resolution_warn_at__lte=now,
        resolution_breach_at__gte=now,
    )
    return live & (response | resolution)


def filter_by_timer_status(
    queryset: QS, flag: str, wanted: bool, now: datetime | None = None
) -> QS:
    now = now or timezone.now()
    condition = breached_q(now) if flag == "breached" else at_risk_q(now)
    return queryset.filter(condition) if wanted else queryset.exclude(condition)
