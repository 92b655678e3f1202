"""Suspended instances: customers who suspend mean to come back within a couple of months. After
SUSPENDED_REMINDER_DAYS one reminder goes to whoever asked for the suspension and to CE
Leadership (resume or tear down), once per suspension."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal import roles
from provisioning.models import Instance, InstanceStatus, Run, RunState
from requests_app import notifications
from requests_app.models import Kind, Notification, Request, State

TOPIC = "suspended_reminder"


def suspended_since(instance: Instance) -> tuple[datetime | None, Request | None]:
    """When the instance was suspended, and the request that asked for it (none for a
    suspension the portal made itself, such as the demo seed's)."""
    request = (
        Request.objects.filter(instance=instance, kind=Kind.SUSPEND, state=State.DONE)
        .order_by("-ended_at")
        .first()
    )
    run = (
        Run.objects.filter(instance=instance, kind=Kind.SUSPEND, state=RunState.APPLIED)
        .order_by("-finished_at")
        .first()
    )
    moments = [r.ended_at for r in (request,) if r and r.ended_at]
    moments += [r.finished_at for r in (run,) if r and r.finished_at]
    return (max(moments), request) if moments else (None, None)


def remind(now: datetime | None = None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SUSPENDED_REMINDER_DAYS)
    sent = 0
    for pk in Instance.objects.filter(status=InstanceStatus.SUSPENDED).values_list("pk", flat=True):
        with transaction.atomic():
            instance = Instance.objects.select_for_update().get(pk=pk)
            if instance.status != InstanceStatus.SUSPENDED:
                continue
            since, request = suspended_since(instance)
            if since is None or since > cutoff:
                continue
            if Notification.objects.filter(
                instance=instance, topic=TOPIC, created_at__gte=since
            ).exists():
                continue  # this suspension had its reminder
            emails = notifications.group_emails(roles.CE_LEADERSHIP)
            if request is not None and request.requested_by.is_active:
                emails.append(request.requested_by.email)
            days = (now - since).days
            subject = (
                f"{instance.slug} ({instance.customer}) has been suspended for {days} days: "
                "resume or tear down?"
            )
            body = (
                f"{instance.slug} ({instance.customer}) was suspended on "
                f"{timezone.localtime(since):%Y-%m-%d}, {days} days ago. Customers who suspend "
                "mean to come back within a couple of months: ask whether to resume it or to "
                "tear it down (its snapshot is still billed).\n\n"
                + notifications.link_to("instance_detail", instance.slug)
            )
            notifications.notify(
                subject, body, emails, now, topic=TOPIC, request=request, instance=instance
            )
            sent += 1
    return sent
