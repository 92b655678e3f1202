"""The targets of each severity: rows in the admin (`IncidentPolicy`), cached like the request
policies (requests_app/sla/policies.py); a severity without a row uses DEFAULTS."""

from datetime import timedelta

from incidents.models import ACKNOWLEDGE, Incident, IncidentPolicy, Severity
from requests_app.sla.calendar import CALENDAR, WORKING
from requests_app.sla.policies import Target, TimedCache

# (acknowledge target, mode), (resolution target, mode) per severity (docs/incidents.md).
DEFAULTS: dict[str, tuple[tuple[timedelta, str], tuple[timedelta, str]]] = {
    Severity.SEV1: ((timedelta(minutes=15), CALENDAR), (timedelta(hours=4), CALENDAR)),
    Severity.SEV2: ((timedelta(hours=1), CALENDAR), (timedelta(hours=24), CALENDAR)),
    Severity.SEV3: ((timedelta(hours=24), CALENDAR), (timedelta(days=5), WORKING)),
}

Policies = dict[str, IncidentPolicy]

_policies: TimedCache[Policies] = TimedCache(
    lambda: {p.severity: p for p in IncidentPolicy.objects.all()}
)


def load() -> Policies:
    """The policies by severity, read again at most every 30 seconds."""
    return _policies.get()


def target(severity: str, which: str, policies: Policies | None = None) -> Target:
    """The target of one timer of an incident of `severity`."""
    policies = policies if policies is not None else load()
    policy = policies.get(severity)
    if policy is None:
        seconds, mode = DEFAULTS[severity][0 if which == ACKNOWLEDGE else 1]
        return Target(seconds.total_seconds(), mode)
    if which == ACKNOWLEDGE:
        return Target(policy.acknowledge_target.total_seconds(), policy.acknowledge_mode)
    return Target(policy.resolution_target.total_seconds(), policy.resolution_mode)


def target_for(incident: Incident, which: str, policies: Policies | None = None) -> Target:
    return target(incident.severity, which, policies)


def working_severities(which: str) -> list[str]:
    """The severities whose `which` timer counts working days."""
    policies = load()
    return [s for s in Severity.values if target(s, which, policies).mode == WORKING]
