"""RQ jobs of the request domain. Each takes ids only; the database row is the truth."""

import logging
from datetime import timedelta

import django_rq
import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone

from requests_app.models import Notification

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


def send_notification(notification_id):
    """Send one notification. The conditional update claims it, so a duplicate job (a retry that
    raced a relay, two workers) finds nothing to do."""
    claimed = Notification.objects.filter(
        pk=notification_id, status=Notification.Status.PENDING
    ).update(status=Notification.Status.SENDING, attempts=F("attempts") + 1)
    if not claimed:
        return "already handled"
    notification = Notification.objects.get(pk=notification_id)
    try:
        if notification.channel == Notification.Channel.SLACK:
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


def send_notifications(notification_ids):
    """Send a batch (the sweep's alerts). Each is claimed on its own, so a retry of the batch
    sends only what is still pending; the batch fails (and is retried) if any failed."""
    failures = []
    for pk in notification_ids:
        try:
            send_notification(pk)
        except Exception as exc:  # noqa: BLE001 - the others still go out
            failures.append(f"{pk}: {exc}")
    if failures:
        raise RuntimeError(f"{len(failures)} notifications failed: {'; '.join(failures[:5])}")
    return len(notification_ids)


def _send_slack(notification):
    if not settings.SLACK_WEBHOOK_URL:
        raise RuntimeError("SLACK_WEBHOOK_URL is not set")
    response = requests.post(
        settings.SLACK_WEBHOOK_URL,
        json={"text": notification.body},
        timeout=10,
    )
    response.raise_for_status()


def _send_email(notification):
    send_mail(
        notification.subject,
        notification.body,
        settings.DEFAULT_FROM_EMAIL,
        notification.recipients,
        fail_silently=False,
    )


RELAY_GRACE = timedelta(minutes=2)
LIVE_JOB_STATUSES = {"queued", "scheduled", "started", "deferred"}


def relay_notifications(now=None):
    """Enqueue again the notifications that were committed but whose job never reached Redis
    (Redis was down at commit) or was lost. The sender's claim makes a duplicate harmless."""
    from requests_app.notifications import enqueue

    now = now or timezone.now()
    queue = django_rq.get_queue("default")
    relayed = 0
    stale = Notification.objects.filter(
        status=Notification.Status.PENDING, created_at__lt=now - RELAY_GRACE
    ).values_list("pk", flat=True)
    for pk in stale.iterator():
        job = queue.fetch_job(f"notification-{pk}")
        if job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES:
            continue
        enqueue(pk)
        relayed += 1
    return relayed


def sla_sweep():
    from requests_app import sweep

    return sweep.run()


def recompute_sla_timers():
    from requests_app import sla

    return sla.recompute_open()
