"""Access grants: who holds which access now, and the reminders before each one ends.

An access request that is done is a grant: DevOps gave `scope` to `person` on its instance (or on
every instance of its category) at `granted_at`, until `expires_at` (requests_app/workflow.py
records them at `complete`). The portal does not revoke anything itself; it tells DevOps, once a
week before the end and once on the day, so that they take the access away, and it lists the
grants on the Access page and at `GET /api/v1/access/`.
"""

import math
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal import roles
from requests_app import notifications
from requests_app.models import Kind, Request, RequestQuerySet, State

WEEK_BEFORE = timedelta(days=7)
TOPIC_WEEK = "access_expires_in_a_week"
TOPIC_DAY = "access_expires_today"


def grants() -> RequestQuerySet:
    """Every grant, with what a list of them shows."""
    return Request.objects.filter(kind=Kind.ACCESS, state=State.DONE).with_related()


def active(now: datetime) -> RequestQuerySet:
    """Grants in force at `now`, the first to end first."""
    return grants().filter(expires_at__gt=now).order_by("expires_at", "id")


def expired(now: datetime) -> RequestQuerySet:
    """Grants that have ended by `now`, the latest to end first."""
    return grants().filter(expires_at__lte=now).order_by("-expires_at", "-id")


def filtered(queryset: RequestQuerySet, params: Mapping[str, Any]) -> RequestQuerySet:
    """Grants narrowed by validated filters (serializers.AccessFiltersSerializer): `category`,
    `scope` (exact values), `person` (part of it, any case; blank: no filter)."""
    if params.get("category"):
        queryset = queryset.filter(category=params["category"])
    if params.get("scope"):
        queryset = queryset.filter(scope=params["scope"])
    if (params.get("person") or "").strip():
        queryset = queryset.filter(person__icontains=params["person"].strip())
    return queryset


def days_left(grant: Request, now: datetime) -> int:
    """Days until the grant ends, rounded up (90 just after a 90-day grant, 1 on its last day);
    0 or less once it has ended (-3: it ended 3 to 4 days ago)."""
    assert grant.expires_at is not None  # complete sets it on every grant
    return math.ceil((grant.expires_at - now).total_seconds() / 86400)


def day_start(moment: datetime) -> datetime:
    """00:00 of `moment`'s day in the portal's time zone (SLA_TIMEZONE)."""
    local = timezone.localtime(moment)
    return timezone.make_aware(datetime.combine(local.date(), time(0)), local.tzinfo)


def what(grant: Request) -> str:
    """ "vault for jo@example.com on acme (Acme Corp)" or "... on all internal instances"."""
    where = grant.target_label
    if grant.customer:
        where += f" ({grant.customer})"
    return f"{grant.scope} for {grant.person} on {where}"


def remind(now: datetime | None = None) -> int:
    """Tell DevOps of grants ending within a week (once) and of those ending today (once more).
    One indexed query finds the grants ending within the week; the notifications are made
    `once`, so a second scheduler or a repeated run sends nothing twice. Returns how many
    reminders were made."""
    now = now or timezone.now()
    ending = list(
        grants()
        .filter(expires_at__gt=now, expires_at__lte=now + WEEK_BEFORE)
        .order_by("expires_at", "id")
    )
    if not ending:
        return 0
    emails = notifications.group_emails(roles.DEVOPS)
    made = 0
    for grant in ending:
        assert grant.expires_at is not None  # the filter above
        until = timezone.localtime(grant.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        if now >= day_start(grant.expires_at):
            topic = TOPIC_DAY
            subject = f"Access ends today at {until[11:]}: {what(grant)}"
        else:
            topic = TOPIC_WEEK
            days = days_left(grant, now)
            subject = f"Access ends in {days} day{'s' if days != 1 else ''}: {what(grant)}"
        granter = grant.granted_by.get_username() if grant.granted_by else "the portal"
        granted = (
            timezone.localtime(grant.granted_at).strftime("%Y-%m-%d") if grant.granted_at else ""
        )
        body = (
            f"{subject}\n\n"
            f"Request #{grant.pk} granted {grant.scope} to {grant.person} on "
            f"{grant.target_label}; {granter} granted it on {granted}; it ends {until}. "
            "Take the access away when it ends, unless a new access request extends it.\n\n"
            + notifications.link_to("request_detail", grant.pk)
        )
        with transaction.atomic():
            sent = notifications.notify(
                subject, body, emails, now, topic=topic, request=grant, once=True
            )
        made += bool(sent)
    return made
