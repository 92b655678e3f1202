"""What the Slack messages say, in Block Kit: the message of an approval stage (the request's
summary, then the buttons while the stage waits, or the outcome once it is decided) and the
dialog that asks why a request is rejected. Everything a person typed is escaped, so a
justification can neither ping the channel nor forge a link."""

import json
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from requests_app.models import Event, NonStandardReason, Request, State
from requests_app.slack.stages import Stage

Block = dict[str, Any]

# How a decision reads on the message: action -> (emoji, words).
OUTCOMES = {
    "approve": (":white_check_mark:", "Approved"),
    "tech_approve": (":white_check_mark:", "Approved in tech review"),
    "reject": (":x:", "Rejected"),
    "tech_reject": (":x:", "Rejected in tech review"),
    "cancel": (":no_entry_sign:", "Cancelled"),
}
REJECT_CALLBACK = "portal_reject"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
JUSTIFICATION_LIMIT = 2800  # of the escaped text: a section's text holds 3,000 characters


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: `<` and `>` would make mentions and links, `&` entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shortened(text: str, limit: int = JUSTIFICATION_LIMIT) -> str:
    """`text` escaped, cut to `limit` characters (a section holds 3,000) without cutting an
    entity in two."""
    shown = escape(text)
    if len(shown) <= limit:
        return shown
    shown = shown[:limit]
    cut = shown.rfind("&", limit - 5)
    if cut != -1 and ";" not in shown[cut:]:
        shown = shown[:cut]
    return shown + "..."


def slack_time(at: Any) -> str:
    """A moment each reader sees in their own time zone; the fallback is the portal's zone."""
    fallback = timezone.localtime(at).strftime("%Y-%m-%d %H:%M %Z")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def request_link(request: Request) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("request_detail", args=[request.pk])


def title(request: Request) -> str:
    return f"#{request.pk} {request.get_kind_display()} for {request.customer}"


def decision(request: Request, stage: Stage) -> Event | None:
    """The event that ended the stage (approved, rejected, cancelled), None while it waits."""
    return (
        Event.objects.filter(request=request, from_state=stage.state)
        .exclude(to_state=stage.state)
        .select_related("by")
        .order_by("id")
        .first()
    )


def outcome(event: Event) -> str:
    """ "Approved by lead at <when>", with the reason of a rejection."""
    emoji, words = OUTCOMES.get(event.action, (":information_source:", event.action))
    who = event.by.get_username() if event.by else "the portal"
    line = f"{emoji} {words} by {escape(who)} at {slack_time(event.at)}"
    reason = event.comment.strip()
    if reason and event.action in ("reject", "tech_reject", "cancel"):
        line += f": {shortened(reason, 2000)}"
    return line


def approval_message(request: Request, stage: Stage) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the stage's message as the request is now."""
    waiting = request.state == stage.state
    requester = request.requested_by.get_username()
    fields = [
        f"*Kind*\n{escape(request.get_kind_display())}",
        f"*Customer*\n{escape(request.customer or '(whole fleet)')}",
        f"*Instance*\n{escape(request.instance_slug or '(none)')}",
        f"*Requested by*\n{escape(requester)}",
    ]
    if request.non_standard_reasons:
        labels = dict(NonStandardReason.choices)
        named = ", ".join(labels.get(r, r) for r in request.non_standard_reasons)
        fields.append(f"*Non-standard*\n{escape(named)}")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title(request)[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    justification = request.justification.strip()
    if justification:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Justification*\n{shortened(justification)}"},
            }
        )
    link = f"<{request_link(request)}|Open request #{request.pk} in the portal>"
    if waiting:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{stage.waiting} · {link}"}],
            }
        )
        blocks.append(buttons(request, stage))
        text = f"{stage.waiting}: {escape(title(request))}"
    else:
        ended = decision(request, stage)
        said = outcome(ended) if ended else f"Now {State(request.state).label.lower()}."
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": said}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        text = f"{escape(title(request))}: {said}"
    return text, blocks


def buttons(request: Request, stage: Stage) -> Block:
    # The version the person sees: a click on a message older than a change is refused.
    value = json.dumps({"request": request.pk, "version": request.version})
    return {
        "type": "actions",
        "block_id": f"decide-{stage.name}",
        "elements": [
            {
                "type": "button",
                "action_id": stage.approve,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": stage.reject,
                "text": {"type": "plain_text", "text": "Reject"},
                "style": "danger",
                "value": value,
            },
        ],
    }


def reject_dialog(request: Request, action: str, version: int, channel: str) -> Block:
    """The modal that asks why; what it is about travels in `private_metadata`."""
    metadata = {"request": request.pk, "action": action, "version": version, "channel": channel}
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": f"Reject #{request.pk}"[:24]},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{escape(title(request))}*"},
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why is it rejected?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
        ],
    }
