"""Incidents for the tests, through the workflow functions as people would make them."""

from incidents import workflow
from incidents.models import IncidentState
from tests.factories import make_instance as _make_instance


def make_instance(slug, **fields):
    return _make_instance(slug, **fields)


def open_incident(user, *instances, severity="sev2", at=None, title=None, **extra):
    """An incident on `instances` (Instance rows), opened by `user` at `at`."""
    return workflow.open_incident(
        user,
        title=title or f"{severity} on {', '.join(i.slug for i in instances)}",
        severity=severity,
        instances=list(instances),
        description=extra.pop("description", "Something is wrong."),
        now=at,
        notify=extra.pop("notify", False),
    )


def incident_in_state(users, state, *instances, severity="sev2", at=None):
    """An incident brought to `state` by `users['devops']` (with a postmortem where needed)."""
    incident = open_incident(users["ce"], *instances, severity=severity, at=at)
    path = {
        IncidentState.OPEN: [],
        IncidentState.ACKNOWLEDGED: ["ack"],
        IncidentState.MITIGATED: ["ack", "mitigate"],
        IncidentState.RESOLVED: ["ack", "mitigate", "resolve"],
    }[state]
    for action in path:
        incident = workflow.perform(
            users["devops"],
            incident.pk,
            action,
            postmortem_url="https://example.com/postmortems/1" if action == "resolve" else "",
            now=at,
        )
    assert incident.state == state
    return incident
