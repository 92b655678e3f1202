"""What Slack sends when someone clicks a button of an approval message or submits the reject
dialog, and what the portal does about it.

1. `verify`: Slack signs each delivery with the app's signing secret (`v0`: HMAC-SHA256 of
   `v0:<timestamp>:<body>`); an unsigned, forged or replayed-late delivery (timestamp more than
   5 minutes away) is refused before anything else, and the endpoint answers 401.
2. `claim`: each delivery the portal takes up is recorded by a key made from the payload (team,
   user and action_ts of a click; the view of a dialog), so a delivery Slack repeats is answered
   without acting again.
3. The person is found by the email of their Slack profile (users.info), and the workflow
   action is taken as them, with the rules of every other surface: their role, the state, the
   version they saw, never the requester. Reject first opens a dialog that asks why.
4. Success shows on the channel's message, which the outbox edits after commit; a refusal is
   told to the person who clicked only (chat.postEphemeral); the message stays as it was.
"""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from requests_app import workflow
from requests_app.models import Request, SlackDelivery
from requests_app.slack import api, messages
from requests_app.slack.stages import BY_ACTION, REJECTS
from requests_app.transitions import RULES
from requests_app.views import forbidden_message

log = logging.getLogger(__name__)

MAX_AGE = timedelta(minutes=5)
# Repeats come within minutes, and a delivery older than MAX_AGE is refused anyway.
KEEP_DELIVERIES = timedelta(days=1)
Answer = dict[str, Any] | None  # the JSON body of the 200 (None: empty)


class Unverified(Exception):
    """The delivery is not Slack's (or no longer fresh): 401."""


class Refused(Exception):
    """What to tell the person who clicked."""


def verify(body: bytes, timestamp: str | None, signature: str | None, now: datetime) -> None:
    if not timestamp or not signature:
        raise Unverified("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Unverified("X-Slack-Request-Timestamp is not a number") from None
    if abs(now.timestamp() - sent) > MAX_AGE.total_seconds():
        raise Unverified("X-Slack-Request-Timestamp is more than 5 minutes from now")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = hmac.new(settings.SLACK_SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v0={expected}".encode(), signature.encode()):
        raise Unverified("the signature does not match")


def claim(key: str, now: datetime) -> bool:
    """True the first time a delivery is seen; False for a repeat."""
    SlackDelivery.objects.filter(received_at__lt=now - KEEP_DELIVERIES).delete()
    try:
        with transaction.atomic():
            SlackDelivery.objects.create(key=key[:255], received_at=now)
    except IntegrityError:
        return False
    return True


@dataclass
class Click:
    """One action asked for from Slack, from a button or from the reject dialog."""

    key: str
    slack_user: str
    channel: str
    request_id: int
    action: str
    version: int
    trigger_id: str = ""
    reason: str = ""


def handle(payload: Any, now: datetime) -> Answer:
    """Act on a verified payload; the answer is the body of the 200."""
    try:
        kind = payload["type"]
        if kind == "block_actions":
            click = _button(payload)
        elif kind == "view_submission" and payload["view"]["callback_id"] == (
            messages.REJECT_CALLBACK
        ):
            click = _dialog(payload)
            if not click.reason.strip():
                # Nothing claimed: the person fixes the dialog and sends it again.
                errors = {messages.REASON_BLOCK: "Say why the request is rejected."}
                return {"response_action": "errors", "errors": errors}
        else:
            return None
    except _Ignore:
        return None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        log.warning("Slack sent an interaction the portal cannot read: %r", exc)
        return None
    if not claim(click.key, now):
        log.info("Slack delivered %s again; already handled", click.key)
        return None
    try:
        _act(click, now)
    except Refused as refusal:
        _tell(click, str(refusal))
    except (api.SlackApiError, OSError) as exc:
        log.warning("Slack interaction %s: a Slack call failed: %s", click.key, exc)
        _tell(click, "The portal could not reach Slack to finish this; try again.")
    except Exception:  # noqa: BLE001 - Slack is answered 200 whatever happens; the log has it
        log.exception("Slack interaction %s failed", click.key)
        _tell(click, "Something went wrong in the portal; nothing was changed. Try again.")
    return None


class _Ignore(Exception):
    """Not something the portal's messages ask for (another app's button, a link)."""


def _button(payload: dict[str, Any]) -> Click:
    [action] = payload["actions"][:1]
    if action.get("action_id") not in BY_ACTION:
        raise _Ignore
    value = json.loads(action["value"])
    user = payload["user"]["id"]
    team = (payload.get("team") or {}).get("id", "")
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get(
        "channel_id", ""
    )
    return Click(
        key=f"block_actions:{team}:{user}:{action['action_ts']}",
        slack_user=user,
        channel=channel or settings.SLACK_APPROVALS_CHANNEL,
        request_id=int(value["request"]),
        action=action["action_id"],
        version=int(value["version"]),
        trigger_id=str(payload.get("trigger_id") or ""),
    )


def _dialog(payload: dict[str, Any]) -> Click:
    view = payload["view"]
    metadata = json.loads(view["private_metadata"])
    if metadata["action"] not in REJECTS:
        raise _Ignore
    user = payload["user"]["id"]
    team = (payload.get("team") or {}).get("id", "")
    typed = view["state"]["values"][messages.REASON_BLOCK][messages.REASON_INPUT].get("value")
    return Click(
        key=f"view_submission:{team}:{view['id']}",
        slack_user=user,
        channel=metadata.get("channel") or settings.SLACK_APPROVALS_CHANNEL,
        request_id=int(metadata["request"]),
        action=metadata["action"],
        version=int(metadata["version"]),
        reason=typed or "",
    )


def _act(click: Click, now: datetime) -> None:
    person = portal_user(click.slack_user)
    request = Request.objects.filter(pk=click.request_id).first()
    if request is None:
        raise Refused(f"Request #{click.request_id} does not exist any more.")
    try:
        if click.action in REJECTS and not click.reason:
            # Ask why first, unless the answer would be a refusal anyway.
            workflow.check_action(person, request, click.action)
            if request.version != click.version:
                raise workflow.Conflict(f"Request #{request.pk} was changed since you saw it.")
            view = messages.reject_dialog(request, click.action, click.version, click.channel)
            api.open_view(click.trigger_id, view)
            return
        workflow.perform(
            person,
            request.pk,
            click.action,
            comment=click.reason.strip(),
            version=click.version,
            now=now,
        )
    except workflow.WorkflowError as exc:
        raise Refused(refusal(person, request, click, exc)) from None


def portal_user(slack_user: str) -> User:
    """The active portal account whose email is the Slack profile's."""
    try:
        email = api.email_of(slack_user)
    except api.SlackApiError as exc:
        # e.g. missing_scope: the app was installed without users:read.email.
        error = exc.response.get("error")
        raise Refused(
            f"Slack would not tell the portal who you are (users.info: {error})."
        ) from None
    if not email:
        raise Refused(
            "Slack did not tell the portal your email (the app needs the users:read.email "
            "scope), so it cannot tell who you are in the portal."
        )
    found = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
    if not found:
        raise Refused(f"No active portal account has your Slack email ({email}).")
    if len(found) > 1:
        raise Refused(f"More than one portal account has your Slack email ({email}).")
    return found[0]


def refusal(person: User, seen: Request, click: Click, error: workflow.WorkflowError) -> str:
    """Why not, in words: the role it takes, the requester rule, or what happened first."""
    rule = RULES[click.action]
    head = f"Request #{seen.pk} was not {messages.OUTCOMES[click.action][1].lower()}: "
    if isinstance(error, workflow.Forbidden):
        # The page's words: the role it takes ("Only CE Leadership may approve requests."), or
        # the workflow's ("You filed request #12; someone else must approve.").
        said = forbidden_message(person, rule, seen, error.message)
        return head + said + (f" You are {person} in the portal." if said != error.message else "")
    if isinstance(error, workflow.Conflict):
        current = Request.objects.with_related().get(pk=seen.pk)
        stage = BY_ACTION[click.action]
        ended = messages.decision(current, stage) if current.state != stage.state else None
        if ended is not None:
            return head + "it was decided before. " + messages.outcome(ended)
        if current.version != click.version:
            return head + "it changed since this message was posted; look at it again."
    return head + error.message


def _tell(click: Click, text: str) -> None:
    try:
        api.tell(click.channel, click.slack_user, text)
    except (api.SlackApiError, OSError) as exc:
        log.warning("could not tell Slack user %s: %s (%s)", click.slack_user, text, exc)
