"""Who hears about incidents, through the notification rows of requests_app.notifications
(mail and Slack, written in the caller's transaction, sent by RQ after commit, relayed if
Redis was down)."""

from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents.models import Incident
from portal import roles
from provisioning.models import Instance
from requests_app import notifications


def _summary(incident: Incident, slugs: Sequence[str]) -> str:
    where = ", ".join(slugs) or "no instance"
    return f"#{incident.pk} {incident.severity.upper()} {incident.title} ({where})"


def opened(incident: Incident, instances: Sequence[Instance], now: datetime) -> None:
    """DevOps hear of every new incident at once."""
    slugs = [i.slug for i in instances]
    subject = f"Incident opened: {_summary(incident, slugs)}"
    by = incident.opened_by.get_username()
    body = "\n\n".join(
        part
        for part in (
            subject,
            f"{by} opened it at {timezone.localtime(now):%Y-%m-%d %H:%M %Z}.",
            incident.description.strip(),
            notifications.link_to("incident_detail", incident.pk),
        )
        if part
    )
    notifications.notify(
        subject,
        body,
        notifications.group_emails(roles.DEVOPS),
        now,
        topic="incident_opened",
        instance=instances[0] if instances else None,
    )


def timer_alert(incident: Incident, which: str, what: str, now: datetime) -> None:
    """An at-risk warning (`what` = at_risk) or a breach alert of one timer: to the commander
    (or all of DevOps while there is none) and to Managers. The sweep's claim on the incident's
    row, in the same transaction, makes it one per timer and kind, never two."""
    User = get_user_model()
    commander = incident.commander
    if commander is not None and commander.is_active and commander.email:
        people = [commander.email]
    else:
        people = notifications.group_emails(roles.DEVOPS)
    managers = [
        u.email for u in User.objects.filter(groups__name=roles.MANAGERS, is_active=True) if u.email
    ]
    headline = "SLA breached" if what == "breached" else "SLA at risk (75% used)"
    slugs = [i.slug for i in incident.instances.all()]
    due = getattr(incident, f"{which}_due_at")
    subject = f"{headline}: {which} of incident {_summary(incident, slugs)}"
    body = (
        f"{subject}\nDue {timezone.localtime(due):%Y-%m-%d %H:%M %Z}\n\n"
        + notifications.link_to("incident_detail", incident.pk)
    )
    notifications.notify(subject, body, [*people, *managers], now, topic=f"incident_{which}_{what}")
