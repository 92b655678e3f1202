"""The two timers of an incident, kept on its row by the SLA engine of requests
(requests_app/sla): both start when the incident is opened; `acknowledge` stops at `ack`,
`resolution` at `resolve`. There is no pause and no cancelled state: every incident ends
resolved, which stops both (a resolve always follows an ack).

The stored instants (`*_due_at`, `*_warn_at`, `*_breach_at`) are recomputed when a policy or
the working calendar changes; the status and the JSON come from requests_app.sla.status, the
one rule."""

from datetime import datetime
from typing import Any

from django.utils import timezone

from incidents import policies
from incidents.models import TIMERS, Incident
from requests_app.sla import policies as sla_policies
from requests_app.sla import status, timers
from requests_app.sla.calendar import WorkingCalendar

TIMER_FIELDS = [
    f"{which}_{name}"
    for which in TIMERS
    for name in ("stopped_at", "due_at", "warn_at", "breach_at", "warned_at", "breach_alerted_at")
]
# What status and durations need of each timer (the dashboards read only these).
TIMER_FIELDS_READ = ("stopped_at", "warn_at", "breach_at")
STORED = [f"{which}_{moment}_at" for which in TIMERS for moment in ("due", "warn", "breach")]


def recompute(
    incident: Incident,
    calendar: WorkingCalendar | None = None,
    found: policies.Policies | None = None,
) -> set[str]:
    """Set each timer's due, 75% and breach instants from the incident's opening and its
    severity's targets; returns the fields that changed."""
    calendar = calendar or sla_policies.get_calendar()
    found = found if found is not None else policies.load()
    started = incident.created_at.timestamp()
    changed: set[str] = set()
    for which in TIMERS:
        target = policies.target_for(incident, which, found)
        assert target.seconds is not None  # every severity has both targets
        instants = timers.deadlines(target.seconds, target.mode, started, [], calendar)
        for moment, epoch in zip(("due", "warn", "breach"), instants, strict=True):
            field = f"{which}_{moment}_at"
            value = timers.from_epoch(epoch)
            if getattr(incident, field) != value:
                setattr(incident, field, value)
                changed.add(field)
    return changed


def recompute_unresolved() -> int:
    """After a policy or the working calendar changed: every timer still running moves to its
    new instants (stopped ones keep those they were judged by). Incidents are few: one save
    per changed row is enough."""
    sla_policies.invalidate_cache()
    calendar, found = sla_policies.get_calendar(), policies.load()
    changed = 0
    for incident in Incident.objects.unresolved().only("id", "severity", "created_at", *STORED):
        fields = recompute(incident, calendar, found)
        if fields:
            Incident.objects.filter(pk=incident.pk).update(
                **{f: getattr(incident, f) for f in fields}
            )
            changed += 1
    return changed


def clock(incident: Incident, which: str) -> status.Clock:
    return status.Clock(
        started=incident.created_at,
        stopped=getattr(incident, f"{which}_stopped_at"),
        warn_at=getattr(incident, f"{which}_warn_at"),
        breach_at=getattr(incident, f"{which}_breach_at"),
    )


def timer_status(incident: Incident, which: str, now: datetime) -> str | None:
    """met, breached, at_risk or running: the one rule (requests_app/sla/status.py)."""
    return clock(incident, which).status(now)


def sla_json(
    incident: Incident,
    now: datetime | None = None,
    calendar: WorkingCalendar | None = None,
    found: policies.Policies | None = None,
) -> dict[str, Any]:
    """`{"acknowledge": timer, "resolution": timer}`, each the timer JSON of docs/sla.md."""
    now = now or timezone.now()
    calendar = calendar or sla_policies.get_calendar()
    found = found if found is not None else policies.load()
    return {
        which: status.clock_json(
            clock(incident, which), policies.target_for(incident, which, found), now, calendar
        )
        for which in TIMERS
    }


def is_working(incident: Incident, which: str) -> bool:
    """Whether this timer counts working days (pages say so and the bar stands still)."""
    return policies.target_for(incident, which).mode == "working"
