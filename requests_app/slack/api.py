"""The Slack Web API calls the portal makes, through Slack's own client (slack_sdk) at
SLACK_API_URL with the bot token. A call Slack answers with `ok: false` raises SlackApiError; one
that does not reach Slack raises OSError (URLError, timeouts): callers decide what that means."""

from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

__all__ = ["SlackApiError", "email_of", "open_view", "post", "tell", "update"]

# Slack wants an interaction answered within 3 seconds, and the jobs should not hang either.
TIMEOUT = 5


def client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL, timeout=TIMEOUT
    )


def post(channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
    """chat.postMessage: returns the (channel id, ts) that name the message from now on."""
    answer = client().chat_postMessage(
        channel=channel, text=text, blocks=blocks, unfurl_links=False
    )
    return str(answer["channel"]), str(answer["ts"])


def update(channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
    client().chat_update(channel=channel, ts=ts, text=text, blocks=blocks)


def tell(channel: str, user: str, text: str) -> None:
    """chat.postEphemeral: a message only `user` sees, in `channel`."""
    client().chat_postEphemeral(channel=channel, user=user, text=text)


def open_view(trigger_id: str, view: dict[str, Any]) -> None:
    client().views_open(trigger_id=trigger_id, view=view)


def email_of(user: str) -> str:
    """The email of a Slack user's profile (users.info; the app needs users:read.email), or ""
    when Slack shows none."""
    answer = client().users_info(user=user)
    found = answer["user"] or {}
    return str((found.get("profile") or {}).get("email") or "")
