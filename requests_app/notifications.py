"""Who hears about what. Rows are written in the workflow's transaction and sent by RQ jobs after
commit; the unique row per (event, channel, topic) and the sender's conditional claim make sure
nothing goes out twice."""

import logging

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from rq import Retry

from portal import roles
from requests_app.models import Notification, State

log = logging.getLogger(__name__)

RETRY_INTERVALS = [5, 30, 120, 600]


def topic_for(event):
    """(topic, audience) for an event, or None when nobody needs to hear about it."""
    if event.action == "submit":
        return "new_request", ("group", roles.CE_LEADERSHIP)
    if event.to_state == State.TECH_REVIEW and event.from_state != State.TECH_REVIEW:
        return "needs_tech_review", ("group", roles.TECH_REVIEW)
    if event.to_state == State.QUEUED and event.from_state != State.QUEUED:
        return "queued", ("group", roles.DEVOPS)
    if event.to_state == State.REJECTED and event.from_state != State.REJECTED:
        return "rejected", ("requester", None)
    if event.to_state == State.DONE and event.from_state != State.DONE:
        return "done", ("requester", None)
    return None


def emails_for(audience, request):
    User = get_user_model()
    who, group = audience
    if who == "requester":
        users = User.objects.filter(pk=request.requested_by_id)
    else:
        users = User.objects.filter(groups__name=group)
    return sorted({u.email for u in users.filter(is_active=True) if u.email})


def message_for(topic, request, event):
    link = settings.PORTAL_BASE_URL.rstrip("/") + reverse("request_detail", args=[request.pk])
    who = event.by.get_username() if event.by else "the portal"
    summary = (
        f"#{request.pk} {request.get_kind_display()} for {request.customer} "
        f"({request.instance_slug})"
    )
    subjects = {
        "new_request": f"New request to approve: {summary}",
        "needs_tech_review": f"Needs tech review: {summary}",
        "queued": f"Queued for DevOps: {summary}",
        "rejected": f"Rejected: {summary}",
        "done": f"Done: {summary}",
    }
    subject = subjects[topic]
    body = f"{subject}\n{who}: {event.action.replace('_', ' ')}"
    if event.comment:
        body += f"\n\n{event.comment}"
    body += f"\n\n{link}"
    return subject, body


def on_event(request, event, now):
    """Record the notifications an event calls for and send them once the transaction commits."""
    found = topic_for(event)
    if found is None:
        return []
    topic, audience = found
    subject, body = message_for(topic, request, event)
    created = []
    recipients = emails_for(audience, request)
    if recipients:
        created.append(
            Notification.objects.create(
                request=request,
                event=event,
                channel=Notification.Channel.EMAIL,
                topic=topic,
                recipients=recipients,
                subject=subject,
                body=body,
                created_at=now,
            )
        )
    if settings.SLACK_WEBHOOK_URL:
        created.append(
            Notification.objects.create(
                request=request,
                event=event,
                channel=Notification.Channel.SLACK,
                topic=topic,
                recipients=[],
                subject=subject,
                body=body,
                created_at=now,
            )
        )
    for notification in created:
        transaction.on_commit(lambda pk=notification.pk: enqueue(pk))
    return created


def on_sla_alerts(requests, which, what, now):
    """At-risk warnings or breach alerts for one timer of several requests: to the assignee (or
    DevOps while nobody has picked the request up) and to Managers, by mail and Slack. Rows are
    made in bulk and sent by one job per batch, so a sweep that finds many stays quick."""
    User = get_user_model()

    def emails(users):
        return {u.email for u in users.filter(is_active=True) if u.email}

    devops = emails(User.objects.filter(groups__name=roles.DEVOPS))
    managers = emails(User.objects.filter(groups__name=roles.MANAGERS))
    topic = f"{which}_{what}"
    headline = "SLA breached" if what == "breached" else "SLA at risk (75% used)"
    base = settings.PORTAL_BASE_URL.rstrip("/")
    rows = []
    for request in requests:
        assignee = request.assignee
        people = {assignee.email} if assignee and assignee.is_active and assignee.email else devops
        due = getattr(request, f"{which}_due_at")
        subject = (
            f"{headline}: {which} of #{request.pk} {request.get_kind_display()} for "
            f"{request.customer} ({request.instance_slug})"
        )
        link = base + reverse("request_detail", args=[request.pk])
        body = f"{subject}\nDue {due.isoformat() if due else 'n/a'}\n\n{link}"
        channels = [(Notification.Channel.EMAIL, sorted(people | managers))]
        if settings.SLACK_WEBHOOK_URL:
            channels.append((Notification.Channel.SLACK, []))
        rows += [
            Notification(
                request=request,
                event=None,
                channel=channel,
                topic=topic,
                recipients=to,
                subject=subject,
                body=body,
                created_at=now,
            )
            for channel, to in channels
            if to or channel == Notification.Channel.SLACK
        ]
    created = Notification.objects.bulk_create(rows)
    ids = [n.pk for n in created]
    if ids:
        transaction.on_commit(lambda: enqueue_many(ids))
    return created


def enqueue_many(notification_ids):
    from requests_app.jobs import send_notifications

    try:
        django_rq.get_queue("default").enqueue(
            send_notifications,
            notification_ids,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        )
    except Exception:  # noqa: BLE001 - Redis down: the rows stay pending for the relay
        log.exception(
            "could not enqueue %s notifications; the relay will retry", len(notification_ids)
        )


def enqueue(notification_id):
    from requests_app.jobs import send_notification

    try:
        django_rq.get_queue("default").enqueue(
            send_notification,
            notification_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            job_id=f"notification-{notification_id}",
        )
    except Exception:  # noqa: BLE001 - Redis down: the row stays pending for the relay
        log.exception("could not enqueue notification %s; the relay will retry", notification_id)
