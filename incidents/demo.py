"""Demo incidents for `seed_demo` (idempotent: each is looked up by its title), so that the
incident pages, the instance and fleet pages and the SLA dashboard show some in `make run`:
an open sev2 waiting for DevOps, and a sev3 resolved with its postmortem."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents import workflow
from incidents.models import Incident, Severity
from provisioning import instances

OPEN_SEV2 = "Code search times out for large monorepos"
RESOLVED_SEV3 = "Nightly backup job reported a partial snapshot"


def seed() -> str:
    users = {u.username: u for u in get_user_model().objects.all()}
    now = timezone.now()
    made = 0
    globex, acme = instances.live("globex"), instances.live("acme")
    if globex is not None and not Incident.objects.filter(title=OPEN_SEV2).exists():
        opened = now - timedelta(minutes=20)
        incident = workflow.open_incident(
            users["ce"],
            title=OPEN_SEV2,
            severity=Severity.SEV2,
            instances=[globex],
            description="Globex reports search requests timing out after 60 s since this "
            "morning's reindex; smaller repositories are fine.",
            now=opened,
            notify=False,
        )
        workflow.add_update(
            users["ce"],
            incident.pk,
            "Customer confirms: affects the two largest repositories only.",
            now=opened + timedelta(minutes=5),
        )
        made += 1
    if acme is not None and not Incident.objects.filter(title=RESOLVED_SEV3).exists():
        opened = now - timedelta(days=12)
        devops, devops2 = users["devops"], users["devops2"]
        incident = workflow.open_incident(
            devops2,
            title=RESOLVED_SEV3,
            severity=Severity.SEV3,
            instances=[acme],
            description="The snapshot of the data disk finished with a warning.",
            now=opened,
            notify=False,
        )
        workflow.perform(devops, incident.pk, "ack", now=opened + timedelta(hours=2))
        workflow.add_update(
            devops,
            incident.pk,
            "The snapshot is complete after a retry; looking into why the first try failed.",
            now=opened + timedelta(hours=3),
        )
        workflow.perform(devops, incident.pk, "mitigate", now=opened + timedelta(hours=5))
        workflow.perform(
            devops,
            incident.pk,
            "resolve",
            comment="A quota on snapshot operations; raised it.",
            postmortem_url="https://example.com/postmortems/acme-snapshot",
            now=opened + timedelta(days=2),
        )
        made += 1
    return f"{Incident.objects.count()} demo incidents ({made} new)"
