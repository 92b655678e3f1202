"""The incidents' SLA sweep (every minute, portal/cron.py): the same sweep as the requests'
(requests_app/sla/sweep.py): indexed lookups of timers past 75% or past their breach instant,
each alert claimed with a conditional UPDATE on the incident's row, so it goes out once."""

import logging
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from incidents import notices, policies
from incidents.models import TIMERS, Incident
from requests_app.sla import sweep
from requests_app.sla.policies import get_calendar

log = logging.getLogger(__name__)

INCIDENT_TIMERS = sweep.TimerTable(
    model=Incident,
    timers=TIMERS,
    working=lambda which: Q(severity__in=policies.working_severities(which)),
)


def _alert(ids: list[int], which: str, what: str, now: datetime) -> int:
    found = Incident.objects.filter(pk__in=ids).select_related("commander", "opened_by")
    incidents = list(found.prefetch_related("instances"))
    for incident in incidents:
        notices.timer_alert(incident, which, what, now)
    return len(incidents)


def run(now: datetime | None = None) -> dict[str, int]:
    """One sweep. Returns how many alerts it claimed, by topic."""
    now = now or timezone.now()
    sent = sweep.sweep(INCIDENT_TIMERS, _alert, now, get_calendar())
    if sent:
        log.info("Incident SLA sweep at %s: %s", now.isoformat(), sent)
    return sent
