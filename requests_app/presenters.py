"""How requests are shown and filtered by their SLA timers (CONTRACTS.md section 4)."""

from django.db.models import F, Q
from django.utils import timezone

from requests_app.sla import sla_json  # noqa: F401 - the API's `sla` field


def breached_q(now):
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


def at_risk_q(now):
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


def filter_by_timer_status(queryset, flag, wanted, now=None):
    now = now or timezone.now()
    condition = breached_q(now) if flag == "breached" else at_risk_q(now)
    return queryset.filter(condition) if wanted else queryset.exclude(condition)
