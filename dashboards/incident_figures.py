"""The incident figures of the SLA dashboard and of `GET /api/v1/sla/summary/` (`incidents`).

Definitions (the dashboard prints them too):

- Period. An incident belongs to the period [since, until) in which it was opened (when both
  its clocks started). With a customer, only incidents that affect one of its instances.
  (Request kinds do not apply to incidents: the kind filter leaves them alone.)
- Time to acknowledge / to resolve: from opening to `ack` / to `resolve`, in real (wall-clock)
  seconds, over the period's incidents acknowledged / resolved so far; median and 90th
  percentile interpolated as for requests (figures.percentile).
- Within target: a timer's status by the one rule (requests_app/sla/status.py, read from the
  stored instants): met / (met + breached); a timer still running and not yet breached is not
  decided. Null while none is.
- Open: the period's incidents not resolved now.

Incidents are few (a handful a week): one query reads the period's rows and Python counts,
on PostgreSQL and SQLite alike."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from dashboards.figures import Period, percentile
from incidents import timers
from incidents.models import ACKNOWLEDGE, RESOLUTION, Incident, IncidentState, Severity
from requests_app.sla.status import BREACHED, MET


@dataclass
class IncidentTally:
    count: int = 0
    open: int = 0
    acknowledge_met: int = 0
    acknowledge_breached: int = 0
    resolution_met: int = 0
    resolution_breached: int = 0
    acknowledge_seconds: list[float] = field(default_factory=list)
    resolution_seconds: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "open": self.open,
            "acknowledge_within_target_pct": _pct(self.acknowledge_met, self.acknowledge_breached),
            "resolution_within_target_pct": _pct(self.resolution_met, self.resolution_breached),
            "median_acknowledge_seconds": _seconds(percentile(self.acknowledge_seconds, 0.5)),
            "p90_acknowledge_seconds": _seconds(percentile(self.acknowledge_seconds, 0.9)),
            "median_resolution_seconds": _seconds(percentile(self.resolution_seconds, 0.5)),
            "p90_resolution_seconds": _seconds(percentile(self.resolution_seconds, 0.9)),
        }


def _pct(met: int, breached: int) -> float | None:
    decided = met + breached
    return round(100 * met / decided, 1) if decided else None


def _seconds(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def period_incidents(period: Period) -> Any:
    q = Q(created_at__gte=period.since, created_at__lt=period.until)
    if period.customer:
        q &= Q(
            pk__in=Incident.instances.through.objects.filter(
                instance__customer__iexact=period.customer
            ).values("incident_id")
        )
    return Incident.objects.filter(q)


ROW_FIELDS = [
    "id",
    "severity",
    "state",
    "created_at",
    *[
        f"{which}_{name}"
        for which in (ACKNOWLEDGE, RESOLUTION)
        for name in timers.TIMER_FIELDS_READ
    ],
]


def compute(period: Period, now: datetime) -> dict[str, IncidentTally]:
    """Per severity (every one, in order) and `total`, for the incidents opened in `period`."""
    tallies = {severity: IncidentTally() for severity in Severity.values}
    total = IncidentTally()
    for incident in period_incidents(period).only(*ROW_FIELDS).order_by():
        for tally in (tallies[incident.severity], total):
            _count(tally, incident, now)
    return {**tallies, "total": total}


def _count(tally: IncidentTally, incident: Incident, now: datetime) -> None:
    tally.count += 1
    tally.open += incident.state != IncidentState.RESOLVED
    for which, seconds in (
        (ACKNOWLEDGE, tally.acknowledge_seconds),
        (RESOLUTION, tally.resolution_seconds),
    ):
        status = timers.timer_status(incident, which, now)
        if status == MET:
            setattr(tally, f"{which}_met", getattr(tally, f"{which}_met") + 1)
        elif status == BREACHED:
            setattr(tally, f"{which}_breached", getattr(tally, f"{which}_breached") + 1)
        stopped = getattr(incident, f"{which}_stopped_at")
        if stopped is not None:
            seconds.append((stopped - incident.created_at).total_seconds())


def summary_json(result: dict[str, IncidentTally]) -> dict[str, Any]:
    return {key: tally.as_json() for key, tally in result.items()}
