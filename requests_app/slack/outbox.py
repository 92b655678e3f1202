"""The Slack messages of approval stages, sent through the notification outbox.

1. In the workflow's transaction, `on_event` writes a row (channel `slack_app`, topic
   `approval:<stage>`) for each stage message the event concerns: the request enters the stage
   (the message is to be posted: its SlackMessage row is made now, without a `ts`), or leaves it
   or is edited while in it (the message is to be edited). The caller enqueues the rows after
   commit; the relay re-enqueues what never reached Redis.
2. The job (`deliver`) renders the message from the request as it is when the job runs. A
   message without a `ts` is posted by the one job that claims it (a conditional update, as the
   sender claims a notification), so it is posted once; a job that finds it being posted fails
   and is retried, and then edits it.
3. After each post or edit the job looks whether the request changed since it rendered (its
   version) and, if so, renders and edits again: of two jobs whose edits land out of order, the
   one that wrote older words sees it and writes the newer ones. No database lock is held while
   Slack is called.
"""

import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from requests_app import history
from requests_app.models import Event, Notification, Request, SlackMessage
from requests_app.slack import api, messages
from requests_app.slack.stages import BY_NAME, STAGES, Stage

TOPIC = "approval:"


def on_event(request: Request, event: Event, now: datetime) -> list[Notification]:
    """The rows an event calls for (the caller enqueues them after commit)."""
    rows = []
    for stage in STAGES:
        if event.to_state == stage.state and event.from_state != stage.state:
            SlackMessage.objects.get_or_create(
                request=request, stage=stage.name, defaults={"created_at": now}
            )
            what = "Post"
        elif event.from_state == stage.state:
            if not SlackMessage.objects.filter(request=request, stage=stage.name).exists():
                continue  # never posted (Slack approvals were off when it entered the stage)
            what = "Update"
        else:
            continue
        rows.append(
            Notification.objects.create(
                request=request,
                event=event,
                channel=Notification.Channel.SLACK_APP,
                topic=TOPIC + stage.name,
                recipients=[],
                subject=f"{what} the Slack message of #{request.pk} ({stage.name})",
                body=history.sentence(event),
                created_at=now,
            )
        )
    return rows


# A claim this old is a job that died between claiming and saving the `ts` (as SENDING_CUTOFF).
POSTING_CUTOFF = timedelta(minutes=10)
# Edits after a change seen meanwhile; a request changes a few times a minute at most.
MAX_EDITS = 3


class Busy(Exception):
    """Another job is posting this message: this one is retried, and then edits it."""


def deliver(notification: Notification) -> str:
    """Bring the stage's Slack message up to date with the request: post it, or edit it."""
    if not settings.SLACK_APPROVALS:
        raise RuntimeError("Slack approvals are off (SLACK_BOT_TOKEN etc. are not set)")
    stage = BY_NAME[notification.topic.removeprefix(TOPIC)]
    assert notification.request_id is not None  # on_event makes rows of a request only
    message = SlackMessage.objects.get(request_id=notification.request_id, stage=stage.name)
    done = "updated"
    if not message.ts:
        shown = _post(message, stage)
        if shown is None:  # another job posted it meanwhile
            message.refresh_from_db()
        else:
            done = "posted"
            if _current(message, shown):
                return done
    for _ in range(MAX_EDITS):
        shown = _edit(message, stage)
        if _current(message, shown):
            break
    return done


def _render(message: SlackMessage, stage: Stage) -> tuple[int, str, list[messages.Block]]:
    request = Request.objects.with_related().get(pk=message.request_id)
    text, blocks = messages.approval_message(request, stage)
    return request.version, text, blocks


def _post(message: SlackMessage, stage: Stage) -> int | None:
    """Post the message once; returns the version shown (None: it was posted by another job)."""
    now = timezone.now()
    claimed = (
        SlackMessage.objects.filter(pk=message.pk, ts="")
        .filter(Q(posting_since__isnull=True) | Q(posting_since__lt=now - POSTING_CUTOFF))
        .update(posting_since=now)
    )
    if not claimed:
        if SlackMessage.objects.filter(pk=message.pk).exclude(ts="").exists():
            return None
        raise Busy(f"the Slack message of #{message.request_id} is being posted by another job")
    version, text, blocks = _render(message, stage)
    try:
        channel, ts = api.post(settings.SLACK_APPROVALS_CHANNEL, text, blocks)
    except Exception as exc:
        if _surely_not_posted(exc):
            SlackMessage.objects.filter(pk=message.pk).update(posting_since=None)
        # else (a timeout: Slack may have posted it): the claim stands until POSTING_CUTOFF.
        raise
    SlackMessage.objects.filter(pk=message.pk).update(
        channel=channel, ts=ts, posted_at=timezone.now(), posting_since=None
    )
    message.channel, message.ts = channel, ts
    return version


def _surely_not_posted(exc: Exception) -> bool:
    """Slack answered that it did not post (ok: false), or the connection never opened."""
    if isinstance(exc, api.SlackApiError):
        return True
    reason = getattr(exc, "reason", exc)  # urllib's URLError wraps the socket's error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


def _edit(message: SlackMessage, stage: Stage) -> int:
    version, text, blocks = _render(message, stage)
    api.update(message.channel, message.ts, text, blocks)
    SlackMessage.objects.filter(pk=message.pk).update(updated_at=timezone.now())
    return version


def _current(message: SlackMessage, shown: int) -> bool:
    return Request.objects.filter(pk=message.request_id, version=shown).exists()
