"""What the CE who owns a customer hears about its maintenance: an upgrade interrupts the
instance for about 1.5 minutes, so they are told before (when and for how long) and after."""

from datetime import datetime

from django.utils import timezone

from portal import roles
from provisioning.models import Instance
from releases.models import Wave, WaveItem
from releases.windows import window_of
from requests_app import notifications
from requests_app.models import Request

OUTAGE = "about 1.5 minutes of errors while the new VM takes over"


def owner_emails(instance: Instance) -> list[str]:
    """The CE who last filed a request for this instance (the customer's CE); CE Leadership
    when no CE ever did (an adopted or seeded instance)."""
    filer = (
        Request.objects.filter(instance_slug=instance.slug, requested_by__groups__name=roles.CE)
        .select_related("requested_by")
        .order_by("-created_at", "-id")
        .first()
    )
    if filer is not None and filer.requested_by.is_active and filer.requested_by.email:
        return [filer.requested_by.email]
    return notifications.group_emails(roles.CE_LEADERSHIP)


def before(item: WaveItem, wave: Wave, now: datetime) -> None:
    """At the wave's confirm: when the upgrade will happen."""
    request = item.request
    instance = item.instance
    version = request.target_version
    window = window_of(instance)
    if window is None or wave.override_window:
        when = "now (no maintenance window holds it back)"
    else:
        opening = window.next_opening(now)
        when = f"in its maintenance window, {window}, from {opening:%Y-%m-%d %H:%M %Z}"
    subject = f"Maintenance: {instance.slug} ({instance.customer}) upgrades to {version}"
    body = (
        f"{instance.slug} ({instance.customer}) will be upgraded from {instance.version} to "
        f"{version} {when}.\nThe customer will see {OUTAGE}.\n\n"
        + notifications.link_to("request_detail", request.pk)
    )
    notifications.notify(
        subject,
        body,
        owner_emails(instance),
        now,
        topic="maintenance_notice",
        request=request,
        instance=instance,
        once=True,
    )


def after(request: Request, now: datetime | None = None) -> None:
    """When the upgrade's run applied."""
    now = now or timezone.now()
    instance = request.instance
    if instance is None:
        return
    subject = f"Maintenance done: {instance.slug} ({instance.customer}) is on {instance.version}"
    body = (
        f"{instance.slug} ({instance.customer}) was upgraded to {instance.version} at "
        f"{timezone.localtime(now):%Y-%m-%d %H:%M %Z}.\n\n"
        + notifications.link_to("request_detail", request.pk)
    )
    notifications.notify(
        subject,
        body,
        owner_emails(instance),
        now,
        topic="maintenance_done",
        request=request,
        instance=instance,
        once=True,
    )
