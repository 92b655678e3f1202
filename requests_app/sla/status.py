"""What a timer's status is: the JSON of one timer, and the same facts as SQL filters.

A timer is `pending`, `running`, `paused`, `met`, `breached` or `cancelled`, and `at_risk` once
75% of its target is used while it runs. The list filters `breached=true` / `at_risk=true` ask
the same questions of the stored columns.
"""

from datetime import datetime
from typing import Any, TypeVar

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from requests_app.models import Request, State
from requests_app.sla import calendar as sla_calendar
from requests_app.sla.policies import (
    AT_RISK_FRACTION,
    RESOLUTION,
    TIMERS,
    Policies,
    load,
    target_for,
)
from requests_app.sla.timers import pauses_of

QS = TypeVar("QS", bound=QuerySet[Request])


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def timer_json(
    request: Request,
    which: str,
    now: datetime | None = None,
    calendar: sla_calendar.WorkingCalendar | None = None,
    policies: Policies | None = None,
) -> dict[str, Any] | None:
    if calendar is None or policies is None:
        calendar, policies = load()
    target = target_for(request, which, policies)
    if target is None:
        return None
    now = now or timezone.now()
    started = getattr(request, f"{which}_started_at")
    stopped = getattr(request, f"{which}_stopped_at")
    pauses = pauses_of(request) if which == RESOLUTION else []
    paused = bool(pauses and pauses[-1][1] is None and stopped is None)
    cancelled = request.state in (State.REJECTED, State.CANCELLED) and stopped is None
    if started is None:
        return {
            "started_at": None,
            "due_at": None,
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 0,
            "remaining_seconds": int(target.seconds) if target.seconds is not None else None,
            "status": "cancelled" if cancelled else "pending",
            "at_risk": False,
        }
    until = stopped or (request.ended_at if cancelled else None) or now
    until = max(until, started)
    elapsed = sla_calendar.elapsed_seconds(target.mode, started, until, calendar, pauses)
    due = None
    remaining = None
    if target.seconds is not None:
        remaining = target.seconds - elapsed
        if not paused:
            due = sla_calendar.due_instant(target.mode, started, target.seconds, calendar, pauses)
    breached = remaining is not None and remaining < 0
    if cancelled:
        status = "cancelled"
    elif stopped is not None:
        status = "breached" if breached else "met"
    elif breached:
        status = "breached"
    elif paused:
        status = "paused"
    else:
        status = "running"
    at_risk = (
        status == "running"
        and target.seconds is not None
        and elapsed >= AT_RISK_FRACTION * target.seconds
    )
    return {
        "started_at": _iso(started),
        "due_at": _iso(due),
        "stopped_at": _iso(stopped),
        "paused": paused,
        "elapsed_seconds": int(elapsed),
        "remaining_seconds": int(remaining) if remaining is not None else None,
        "status": status,
        "at_risk": at_risk,
    }


def sla_json(request: Request, now: datetime | None = None) -> dict[str, Any]:
    calendar, policies = load()
    return {which: timer_json(request, which, now, calendar, policies) for which in TIMERS}


def breached_q(now: datetime) -> Q:
    """Requests with a timer past its target: running past due, paused after due, or stopped
    late. Cancelled and rejected requests count as neither breached nor at risk."""
    live = Q(ended_at__isnull=True)
    response = (Q(response_stopped_at__isnull=True, response_due_at__lt=now) & live) | Q(
        response_stopped_at__gt=F("response_due_at")
    )
    resolution = (
        (
            Q(resolution_stopped_at__isnull=True, resolution_paused_at__isnull=True)
            & Q(resolution_due_at__lt=now)
            & live
        )
        | (
            Q(resolution_paused_at__isnull=False, resolution_due_at__lt=F("resolution_paused_at"))
            & live
        )
        | Q(resolution_stopped_at__gt=F("resolution_due_at"))
    )
    return response | resolution


def at_risk_q(now: datetime) -> Q:
    """Running timers with at least 75% of the target used, not yet breached."""
    live = Q(ended_at__isnull=True)
    response = Q(
        response_stopped_at__isnull=True, response_warn_at__lte=now, response_due_at__gte=now
    )
    resolution = Q(
        resolution_stopped_at__isnull=True,
        resolution_paused_at__isnull=True,
        resolution_warn_at__lte=now,
        resolution_due_at__gte=now,
    )
    return live & (response | resolution)


def filter_by_timer_status(
    queryset: QS, flag: str, wanted: bool, now: datetime | None = None
) -> QS:
    now = now or timezone.now()
    condition = breached_q(now) if flag == "breached" else at_risk_q(now)
    return queryset.filter(condition) if wanted else queryset.exclude(condition)
