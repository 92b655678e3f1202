"""Who hears about what, and the sending of it.

Rows are written in the workflow's transaction and sent by RQ jobs after commit (the jobs in
`requests_app.jobs` call `send` and `relay` here); the unique row per (event, channel, topic) and
the sender's conditional claim make sure nothing goes out twice.
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import django_rq
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone
from rq import Retry

from portal import roles
from provisioning.models import Instance
from requests_app import history
from requests_app.models import Event, Kind, Notification, Request, State
from requests_app.slack import outbox as slack_outbox

log = logging.getLogger(__name__)

RETRY_INTERVALS = [5, 30, 120, 600]
# Who hears of a topic: ("group", role name) or ("requester", None).
Audience = tuple[str, str | None]


def topic_for(event: Event, kind: str = "") -> tuple[str, Audience] | None:
    """(topic, audience) for an event of a request of `kind`, or None when nobody needs to hear
    about it. A new request goes to whoever approves its kind (access: Managers)."""
    if event.action == "submit":
        approvers = roles.MANAGERS if kind == Kind.ACCESS else roles.CE_LEADERSHIP
        return "new_request", ("group", approvers)
    if event.to_state == State.TECH_REVIEW and event.from_state != State.TECH_REVIEW:
        return "needs_tech_review", ("group", roles.TECH_REVIEW)
    if event.to_state == State.QUEUED and event.from_state != State.QUEUED:
        return "queued", ("group", roles.DEVOPS)
    if event.to_state == State.REJECTED and event.from_state != State.REJECTED:
        return "rejected", ("requester", None)
    if event.to_state == State.DONE and event.from_state != State.DONE:
        return "done", ("requester", None)
    return None


def emails_for(audience: Audience, request: Request) -> list[str]:
    User = get_user_model()
    who, group = audience
    if who == "requester":
        users = User.objects.filter(pk=request.requested_by_id)
    else:
        users = User.objects.filter(groups__name=group)
    return sorted({u.email for u in users.filter(is_active=True) if u.email})


def summary_of(request: Request) -> str:
    """ "#12 Create an instance for Acme Corp (acme)"; an access says for whom, to what."""
    if request.kind == Kind.ACCESS:
        where = request.target_label + (f" ({request.customer})" if request.customer else "")
        return f"#{request.pk} Access to {request.scope} for {request.person} on {where}"
    return (
        f"#{request.pk} {request.get_kind_display()} for {request.customer} "
        f"({request.instance_slug})"
    )


def message_for(topic: str, request: Request, event: Event) -> tuple[str, str]:
    link = settings.PORTAL_BASE_URL.rstrip("/") + reverse("request_detail", args=[request.pk])
    summary = summary_of(request)
    subjects = {
        "new_request": f"New request to approve: {summary}",
        "needs_tech_review": f"Needs tech review: {summary}",
        "queued": f"Queued for DevOps: {summary}",
        "rejected": f"Rejected: {summary}",
        "done": f"Done: {summary}",
    }
    subject = subjects[topic]
    # In the history's words, with the reason or comment given: "lead rejected the request:
    # <reason>", "ce filed the request: <justification>".
    body = f"{subject}\n\n{history.sentence(event)}\n\n{link}"
    return subject, body


def on_event(request: Request, event: Event, now: datetime) -> list[Notification]:
    """Record the notifications an event calls for and send them once the transaction commits."""
    created: list[Notification] = []
    if settings.SLACK_APPROVALS:
        # The approval messages in Slack: posted as a stage opens, edited as the request moves.
        created += slack_outbox.on_event(request, event, now)
    found = topic_for(event, request.kind)
    if found is not None:
        created += _tell_audience(request, event, *found, now)
    for notification in created:
        transaction.on_commit(partial(enqueue, notification.pk))
    return created


def channels_for(recipients: list[str]) -> list[tuple[str, list[str]]]:
    """(channel, recipients) of one message: mail to `recipients` when there are any, and Slack
    (its webhook's channel) when SLACK_WEBHOOK_URL is set."""
    channels: list[tuple[str, list[str]]] = []
    if recipients:
        channels.append((Notification.Channel.EMAIL, recipients))
    if settings.SLACK_WEBHOOK_URL:
        channels.append((Notification.Channel.SLACK, []))
    return channels


def _tell_audience(
    request: Request, event: Event, topic: str, audience: Audience, now: datetime
) -> list[Notification]:
    subject, body = message_for(topic, request, event)
    channels = channels_for(emails_for(audience, request))
    return [
        Notification.objects.create(
            request=request,
            event=event,
            channel=channel,
            topic=topic,
            recipients=to,
            subject=subject,
            body=body,
            created_at=now,
        )
        for channel, to in channels
    ]


def on_sla_alerts(
    requests: Iterable[Request], which: str, what: str, now: datetime
) -> list[Notification]:
    """At-risk warnings or breach alerts for one timer of several requests: to the assignee (or
    DevOps while nobody has picked the request up) and to Managers, by mail and Slack. Rows are
    made in bulk and sent by one job per batch, so a sweep that finds many stays quick."""
    User = get_user_model()

    def emails(users: QuerySet[Any]) -> set[str]:
        return {u.email for u in users.filter(is_active=True) if u.email}

    devops = emails(User.objects.filter(groups__name=roles.DEVOPS))
    managers = emails(User.objects.filter(groups__name=roles.MANAGERS))
    topic = f"{which}_{what}"
    headline = "SLA breached" if what == "breached" else "SLA at risk (75% used)"
    base = settings.PORTAL_BASE_URL.rstrip("/")
    rows: list[Notification] = []
    for request in requests:
        assignee = request.assignee
        people = {assignee.email} if assignee and assignee.is_active and assignee.email else devops
        due = getattr(request, f"{which}_due_at")
        subject = f"{headline}: {which} of {summary_of(request)}"
        link = base + reverse("request_detail", args=[request.pk])
        body = f"{subject}\nDue {due.isoformat() if due else 'n/a'}\n\n{link}"
        channels = channels_for(sorted(people | managers))
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
        ]
    created = Notification.objects.bulk_create(rows)
    ids = [n.pk for n in created]
    if ids:
        transaction.on_commit(lambda: enqueue_many(ids))
    return created


SEND_JOB = "requests_app.jobs.send_notification"
SEND_MANY_JOB = "requests_app.jobs.send_notifications"
MAX_ATTEMPTS = 5


def on_drift(instance: Instance, drift: dict[str, Any], now: datetime) -> list[Notification]:
    """Verification found that an instance differs from the portal's record: DevOps hear once
    per distinct finding (the caller sends only when the problems changed)."""
    User = get_user_model()
    devops = sorted(
        {u.email for u in User.objects.filter(groups__name=roles.DEVOPS, is_active=True) if u.email}
    )
    link = settings.PORTAL_BASE_URL.rstrip("/") + reverse("instance_detail", args=[instance.slug])
    subject = f"Drift on {instance.slug} ({instance.customer}): the record and GCP disagree"
    body = "\n".join([subject, "", *[f"- {p}" for p in drift["problems"]], "", link])
    channels = channels_for(devops)
    created = [
        Notification.objects.create(
            instance=instance,
            channel=channel,
            topic="drift",
            recipients=to,
            subject=subject,
            body=body,
            created_at=now,
        )
        for channel, to in channels
    ]
    for notification in created:
        transaction.on_commit(partial(enqueue, notification.pk))
    return created


def notify(
    subject: str,
    body: str,
    emails: Iterable[str],
    now: datetime,
    *,
    topic: str,
    request: Request | None = None,
    instance: Instance | None = None,
    once: bool = False,
) -> list[Notification]:
    """A message of the portal's own (maintenance notices, reminders, release news) by mail to
    `emails` and to Slack. `once` (with a request): one per (request, channel, topic) ever, held
    by the database's unique row, so two workers or a repeated sweep send it once."""
    channels = channels_for(sorted({e for e in emails if e}))
    created = []
    for channel, to in channels:
        if once:
            assert request is not None, "once is per request"
            with transaction.atomic():
                if Notification.objects.filter(
                    request=request, event=None, channel=channel, topic=topic
                ).exists():
                    continue
                try:
                    with transaction.atomic():
                        row = Notification.objects.create(
                            request=request,
                            instance=instance,
                            channel=channel,
                            topic=topic,
                            recipients=to,
                            subject=subject,
                            body=body,
                            created_at=now,
                        )
                except IntegrityError:  # another worker made it first
                    continue
        else:
            row = Notification.objects.create(
                request=request,
                instance=instance,
                channel=channel,
                topic=topic,
                recipients=to,
                subject=subject,
                body=body,
                created_at=now,
            )
        created.append(row)
        transaction.on_commit(partial(enqueue, row.pk))
    return created


def group_emails(*groups: str) -> list[str]:
    User = get_user_model()
    return sorted(
        {u.email for u in User.objects.filter(groups__name__in=groups, is_active=True) if u.email}
    )


def link_to(url_name: str, *args: Any) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(url_name, args=args)


def enqueue_many(notification_ids: list[int]) -> None:
    try:
        django_rq.get_queue("default").enqueue(
            SEND_MANY_JOB,
            notification_ids,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        )
    except Exception:  # noqa: BLE001 - Redis down: the rows stay pending for the relay
        log.exception(
            "could not enqueue %s notifications; the relay will retry", len(notification_ids)
        )


def enqueue(notification_id: int) -> None:
    try:
        django_rq.get_queue("default").enqueue(
            SEND_JOB,
            notification_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            job_id=job_id(notification_id),
        )
    except Exception:  # noqa: BLE001 - Redis down: the row stays pending for the relay
        log.exception("could not enqueue notification %s; the relay will retry", notification_id)


# -- sending ------------------------------------------------------------------------------------


def send(notification_id: int) -> str:
    """Send one notification. The conditional update claims it, so a duplicate job (a retry that
    raced a relay, two workers) finds nothing to do."""
    claimed = Notification.objects.filter(
        pk=notification_id, status=Notification.Status.PENDING
    ).update(
        status=Notification.Status.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
    )
    if not claimed:
        return "already handled"
    notification = Notification.objects.get(pk=notification_id)
    try:
        if notification.channel == Notification.Channel.SLACK_APP:
            slack_outbox.deliver(notification)
        elif notification.channel == Notification.Channel.SLACK:
            _send_slack(notification)
        else:
            _send_email(notification)
    except Exception as exc:
        give_up = notification.attempts >= MAX_ATTEMPTS
        Notification.objects.filter(pk=notification_id).update(
            status=Notification.Status.FAILED if give_up else Notification.Status.PENDING,
            last_error=f"{exc.__class__.__name__}: {exc}"[:2000],
        )
        log.warning(
            "notification %s failed (attempt %s): %s", notification_id, notification.attempts, exc
        )
        raise
    Notification.objects.filter(pk=notification_id).update(
        status=Notification.Status.SENT, sent_at=timezone.now(), last_error=""
    )
    return "sent"


def send_many(notification_ids: list[int]) -> int:
    """Send a batch (the sweep's alerts). Each is claimed on its own, so a retry of the batch
    sends only what is still pending; the batch fails (and is retried) if any failed."""
    failures: list[str] = []
    for pk in notification_ids:
        try:
            send(pk)
        except Exception as exc:  # noqa: BLE001 - the others still go out
            failures.append(f"{pk}: {exc}")
    if failures:
        raise RuntimeError(f"{len(failures)} notifications failed: {'; '.join(failures[:5])}")
    return len(notification_ids)


def _send_slack(notification: Notification) -> None:
    if not settings.SLACK_WEBHOOK_URL:
        raise RuntimeError("SLACK_WEBHOOK_URL is not set")
    response = requests.post(
        settings.SLACK_WEBHOOK_URL,
        json={"text": notification.body},
        timeout=10,
    )
    response.raise_for_status()


def _send_email(notification: Notification) -> None:
    """One message per row with a Message-ID made from the row: a message sent again after a
    sender died mid-send (at-least-once) is the same message to the receiving mail system."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "portal.invalid"
    EmailMessage(
        notification.subject,
        notification.body,
        settings.DEFAULT_FROM_EMAIL,
        notification.recipients,
        headers={"Message-ID": f"<notification-{notification.pk}@{domain}>"},
    ).send(fail_silently=False)


# A row this young may still have its enqueue in flight; older ones without a live job are
# relayed, so what waited for Redis goes out within a relay (a minute) of its return.
RELAY_GRACE = timedelta(seconds=30)
# A send takes seconds (mail and Slack time out after 10 s); a claim this old is a dead sender.
SENDING_CUTOFF = timedelta(minutes=10)
LIVE_JOB_STATUSES = {"queued", "scheduled", "started", "deferred"}


def job_id(notification_id: int) -> str:
    """The RQ job of one notification, named after its row (RQ 2 refuses ':' in job ids)."""
    return f"notification-{notification_id}"


def recover_stuck(now: datetime) -> tuple[int, int]:
    """Rows left `sending` by a sender that died (worker killed mid-send): back to pending for
    another attempt, or failed once the attempts are used up. Returns (retried, failed)."""
    stuck = Notification.objects.filter(
        status=Notification.Status.SENDING, claimed_at__lt=now - SENDING_CUTOFF
    )
    retried = stuck.filter(attempts__lt=MAX_ATTEMPTS).update(
        status=Notification.Status.PENDING,
        last_error="The sender stopped while sending; sending again.",
    )
    failed = stuck.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Notification.Status.FAILED,
        last_error=f"The sender stopped while sending, {MAX_ATTEMPTS} times; not retried.",
    )
    if retried or failed:
        log.warning("notifications stuck in sending: %s retried, %s failed", retried, failed)
    return retried, failed


def relay(now: datetime | None = None) -> int:
    """Enqueue again the notifications that were committed but whose job never reached Redis
    (Redis was down at commit) or was lost, after taking back those a dead sender left. The
    sender's claim makes a duplicate harmless; a job still queued is left alone."""
    now = now or timezone.now()
    recover_stuck(now)
    queue = django_rq.get_queue("default")
    relayed = 0
    stale = Notification.objects.filter(
        status=Notification.Status.PENDING, created_at__lt=now - RELAY_GRACE
    ).values_list("pk", flat=True)
    for pk in stale.iterator():
        job = queue.fetch_job(job_id(pk))
        if job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES:
            continue
        enqueue(pk)
        relayed += 1
    return relayed
