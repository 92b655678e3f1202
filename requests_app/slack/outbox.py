"""The Slack messages of approval stages, sent through the notification outbox.

1. In the workflow's transaction, `on_event` writes a row (channel `slack_app`, topic
   `approval:<stage>`) for each stage message the event concerns: the request enters the stage
   (the message is to be posted: its SlackMessage row is made now, without a `ts`), or leaves it
   or is edited while in it (the message is to be edited). The caller enqueues the rows after
   commit; the relay re-enqueues what never reached Redis.
2. The job (`deliver`) renders the message from the request as it is when the job runs, and
   posts it when it has no `ts` yet, else edits it. It holds the SlackMessage row's lock meanwhile,
   so two jobs of one message take turns and the message is posted once; whichever runs last
   shows the latest state.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app import history
from requests_app.models import Event, Notification, Request, SlackMessage
from requests_app.slack import api, messages
from requests_app.slack.stages import BY_NAME, STAGES

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


def deliver(notification: Notification) -> str:
    """Bring the stage's Slack message up to date with the request: post it, or edit it."""
    if not settings.SLACK_APPROVALS:
        raise RuntimeError("Slack approvals are off (SLACK_BOT_TOKEN etc. are not set)")
    stage = BY_NAME[notification.topic.removeprefix(TOPIC)]
    assert notification.request_id is not None  # on_event makes rows of a request only
    with transaction.atomic():
        message = SlackMessage.objects.select_for_update().get(
            request_id=notification.request_id, stage=stage.name
        )
        request = Request.objects.with_related().get(pk=message.request_id)
        text, blocks = messages.approval_message(request, stage)
        now = timezone.now()
        if not message.ts:
            message.channel, message.ts = api.post(settings.SLACK_APPROVALS_CHANNEL, text, blocks)
            message.posted_at = now
            message.save(update_fields=["channel", "ts", "posted_at"])
            return "posted"
        api.update(message.channel, message.ts, text, blocks)
        message.updated_at = now
        message.save(update_fields=["updated_at"])
        return "updated"
