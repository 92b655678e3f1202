"""Approvals in Slack, against a local stand-in for Slack's Web API (a real HTTP server on
127.0.0.1 that records each call) and signed deliveries posted to /slack/interactions/."""

import hashlib
import hmac
import itertools
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import django_rq
import pytest
from django.utils import timezone
from rq import SimpleWorker

from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.jobs import relay_notifications, send_notification
from requests_app.models import Event, Notification, Request, SlackDelivery, SlackMessage
from requests_app.slack import api, messages, outbox
from tests.factories import make_user

pytestmark = pytest.mark.clock

URL = "/slack/interactions/"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"
CHANNEL = "C0APPROVALS"
PEOPLE = {
    "U_LEAD": "lead@example.com",
    "U_LEAD2": "Lead2@Example.com",  # Slack keeps the case people typed
    "U_CELEAD": "celead@example.com",
    "U_CE": "ce@example.com",
    "U_REVIEWER": "reviewer@example.com",
    "U_STRANGER": "someone@elsewhere.example",
}


class FakeSlack:
    """Slack's side of the Web API: answers chat.postMessage, chat.update, chat.postEphemeral,
    views.open and users.info (emails of the user ids in PEOPLE), records every call with its
    arguments and token, and fails the next calls of a method on demand."""

    def __init__(self):
        self.calls = []
        self.failing = {}
        self.posted = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer(dict(parse_qsl(urlsplit(self.path).query)))

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    self.answer(json.loads(raw))
                else:
                    self.answer(dict(parse_qsl(raw)))

            def answer(self, args):
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                token = self.headers.get("Authorization", "")
                fake.calls.append((method, args, token))
                if fake.failing.get(method):
                    fake.failing[method] -= 1
                    body = {"ok": False, "error": "internal_error"}
                elif method == "users.info":
                    email = PEOPLE.get(args.get("user"))
                    body = (
                        {"ok": True, "user": {"id": args["user"], "profile": {"email": email}}}
                        if email
                        else {"ok": False, "error": "user_not_found"}
                    )
                elif method == "chat.postMessage":
                    fake.posted += 1
                    body = {"ok": True, "channel": CHANNEL, "ts": f"1700000000.{fake.posted:06d}"}
                elif method == "chat.update":
                    body = {"ok": True, "channel": args["channel"], "ts": args["ts"]}
                elif method == "views.open":
                    body = {"ok": True, "view": {"id": "V123"}}
                else:
                    body = {"ok": True}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def called(self, method):
        return [args for name, args, _ in self.calls if name == method]

    def methods(self):
        return [name for name, _, _ in self.calls]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def slack_server():
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def slack(slack_server, settings):
    fake = slack_server
    fake.calls.clear()
    fake.failing.clear()
    fake.posted = 0
    settings.SLACK_APPROVALS = True
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_APPROVALS_CHANNEL = CHANNEL
    settings.SLACK_API_URL = fake.url
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    return fake


@pytest.fixture
def people(users):
    return {
        **users,
        "lead2": make_user("lead2", "CE Leadership"),
        # Files requests and approves others': the requester rule, not the role, refuses.
        "celead": make_user("celead", "CE", "CE Leadership"),
    }


def run_jobs():
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def file_create(user, slug="hooli", **extra):
    data = {"instance": slug, "customer": "Hooli", "users": 100, **extra}
    form = FORMS["create"](data=data)
    assert form.is_valid(), form.errors
    return workflow.file_request(user, "create", form.cleaned_data)


def posted(user, capture, **extra):
    """A request filed by `user` and its approval message posted by the outbox's job."""
    with capture(execute=True):
        request = file_create(user, **extra)
    run_jobs()
    return request


def last_blocks(slack):
    """The blocks of the approval message as Slack shows it now (the latest post or edit)."""
    sent = [args for name, args, _ in slack.calls if name in ("chat.postMessage", "chat.update")]
    return sent[-1]["blocks"]


def button(slack, action):
    for block in last_blocks(slack):
        for element in block.get("elements", []):
            if element.get("action_id") == action:
                return element
    raise AssertionError(f"no {action} button on the message")


ACTION_TS = itertools.count(1)


def click(slack, action, user):
    """The block_actions payload Slack sends when `user` presses a button of the message."""
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user, "username": user.lower()},
        "trigger_id": f"trigger-{next(ACTION_TS)}",
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
        "actions": [
            {
                "action_id": action,
                "block_id": "decide",
                "value": button(slack, action)["value"],
                "action_ts": f"1700000100.{next(ACTION_TS):06d}",
            }
        ],
    }


def submission(view, user, reason):
    """The view_submission payload of the reject dialog `view` (as views.open got it)."""
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "view": {
            "id": "V123",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "hash": "156772938.1827394",
            "state": {
                "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
            },
        },
    }


def deliver(client, payload, *, at=None, secret=SECRET, body=None, headers=None):
    """POST a payload to the endpoint as Slack does: form-encoded, signed with `secret`."""
    raw = body if body is not None else urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if at is None else int(at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{raw}".encode(), hashlib.sha256).hexdigest()
    signed = {"HTTP_X_SLACK_REQUEST_TIMESTAMP": stamp, "HTTP_X_SLACK_SIGNATURE": f"v0={digest}"}
    return client.post(
        URL,
        data=raw,
        content_type="application/x-www-form-urlencoded",
        **({} if headers == {} else {**signed, **(headers or {})}),
    )


def acted(client, capture, payload, **kwargs):
    with capture(execute=True):
        response = deliver(client, payload, **kwargs)
    run_jobs()
    return response


def decisions(request):
    return list(
        Event.objects.filter(request=request)
        .exclude(action="submit")
        .values_list("action", "by__username")
    )


def ephemerals(slack):
    return [(args["user"], args["text"]) for args in slack.called("chat.postEphemeral")]


# -- posting --------------------------------------------------------------------------------------


def test_a_request_waiting_for_approval_is_posted_once_after_commit(
    people, slack, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = file_create(
            people["ce"], justification="Trial <!channel> & <https://evil.example|docs>"
        )
    # Nothing leaves before the transaction commits.
    assert slack.calls == [] and django_rq.get_queue("default").count == 0
    for callback in callbacks:
        callback()
    run_jobs()
    [(method, args, token)] = slack.calls
    assert (method, args["channel"], token) == ("chat.postMessage", CHANNEL, f"Bearer {TOKEN}")
    text = json.dumps(args["blocks"])
    assert f"#{request.pk} Create an instance for Hooli" in text
    for shown in ("*Customer*\\nHooli", "*Instance*\\nhooli", "*Requested by*\\nce"):
        assert shown in text
    assert f"<https://portal.example.com/requests/{request.pk}/|Open request" in text
    # What people typed cannot ping the channel or make a link.
    assert "Trial &lt;!channel&gt; &amp; &lt;https://evil.example|docs&gt;" in text
    assert "<!channel>" not in text
    assert [b["action_id"] for b in args["blocks"][-1]["elements"]] == ["approve", "reject"]
    message = SlackMessage.objects.get(request=request)
    assert (message.stage, message.channel, message.ts) == (
        "leadership",
        CHANNEL,
        "1700000000.000001",
    )
    # The job again (a duplicate, a relay): nothing more is posted.
    row = Notification.objects.get(channel="slack_app")
    assert send_notification(row.pk) == "already handled"
    assert slack.methods() == ["chat.postMessage"]


def test_a_long_justification_is_cut_to_what_a_block_holds_without_breaking_an_entity():
    cut = messages.shortened("a" + "&" * 1000, limit=2800)
    assert cut.endswith("&amp;...") and len(cut) <= 2803
    assert messages.shortened("x < y", limit=2800) == "x &lt; y"


def test_the_relay_posts_what_never_reached_redis_and_a_failed_post_is_retried(
    people, slack, django_capture_on_commit_callbacks
):
    slack.failing["chat.postMessage"] = 1
    # The commit's enqueue is lost (Redis was down): the row waits for the relay.
    with django_capture_on_commit_callbacks(execute=False):
        request = file_create(people["ce"])
    row = Notification.objects.get(channel="slack_app")
    assert row.status == "pending" and django_rq.get_queue("default").count == 0
    # The relay enqueues it (and the mail to CE Leadership); Slack fails this time.
    assert relay_notifications(timezone.now() + timedelta(minutes=1)) == 2
    run_jobs()
    row.refresh_from_db()
    assert row.status == "pending" and "internal_error" in row.last_error
    assert SlackMessage.objects.get(request=request).ts == ""
    # RQ's retry of the job: posted now, and only now.
    assert send_notification(row.pk) == "sent"
    assert send_notification(row.pk) == "already handled"
    assert slack.methods() == ["chat.postMessage", "chat.postMessage"]  # one failed, one posted
    assert SlackMessage.objects.get(request=request).ts == "1700000000.000001"


def test_a_message_being_posted_is_not_posted_again_and_a_change_meanwhile_is_shown(
    people, slack, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        request = file_create(people["ce"])
    row = Notification.objects.get(channel="slack_app")
    # Another job claimed the message and is posting it: this one stands back, to be retried.
    SlackMessage.objects.filter(request=request).update(posting_since=timezone.now())
    with pytest.raises(outbox.Busy):
        send_notification(row.pk)
    assert slack.calls == []
    # A claim older than the cutoff is a job that died: the message is posted after all.
    SlackMessage.objects.filter(request=request).update(
        posting_since=timezone.now() - timedelta(minutes=11)
    )
    # Lead approves in the portal while Slack takes the post: the job sees the request changed
    # after it rendered, and edits the message it has just posted.
    post = api.post

    def post_while_lead_approves(*args):
        answer = post(*args)
        workflow.perform(people["lead"], request.pk, "approve", notify=False)
        return answer

    monkeypatch.setattr(api, "post", post_while_lead_approves)
    assert send_notification(row.pk) == "sent"
    assert slack.methods() == ["chat.postMessage", "chat.update"]
    assert "Approved by lead at" in slack.called("chat.update")[0]["text"]
    assert SlackMessage.objects.get(request=request).posting_since is None


# -- approving and rejecting in Slack -------------------------------------------------------------


def test_approve_as_lead_moves_the_request_and_the_message_says_so(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    response = acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD"))
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.state == "queued" and decisions(request) == [("approve", "lead")]
    assert slack.called("users.info")[0]["user"] == "U_LEAD"
    [update] = slack.called("chat.update")
    ts = SlackMessage.objects.get(request=request).ts
    assert (update["channel"], update["ts"]) == (CHANNEL, ts)
    assert "Approved by lead at <!date^" in update["text"]
    assert not [b for b in update["blocks"] if b["type"] == "actions"]  # buttons gone
    assert ephemerals(slack) == []


def test_the_requester_may_not_approve_their_own_request_in_slack(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["celead"], django_capture_on_commit_callbacks)
    response = acted(
        client, django_capture_on_commit_callbacks, click(slack, "approve", "U_CELEAD")
    )
    assert response.status_code == 200
    [(user, text)] = ephemerals(slack)
    assert user == "U_CELEAD"
    assert f"Request #{request.pk} was not approved: You filed request #{request.pk}" in text
    request.refresh_from_db()
    assert request.state == "pending_approval" and decisions(request) == []
    assert slack.called("chat.update") == []  # the message stays, buttons and all


def test_a_role_that_may_not_approve_is_told_so(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["sales"], django_capture_on_commit_callbacks)
    response = acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_CE"))
    assert response.status_code == 200
    [(user, text)] = ephemerals(slack)
    assert (
        user == "U_CE"
        and "Only CE Leadership may approve requests. You are ce in the portal." in text
    )
    request.refresh_from_db()
    assert request.state == "pending_approval" and decisions(request) == []


def test_someone_slack_cannot_match_to_a_portal_account_is_refused(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_STRANGER"))
    [(user, text)] = ephemerals(slack)
    assert "No active portal account has your Slack email (someone@elsewhere.example)" in text
    request.refresh_from_db()
    assert request.state == "pending_approval"
    # An app installed without users:read.email: Slack refuses users.info, and the person hears.
    slack.failing["users.info"] = 1
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD"))
    assert (
        "Slack would not tell the portal who you are (users.info: internal_error)"
        in (ephemerals(slack)[-1][1])
    )
    assert decisions(request) == []
    # An email is matched whatever its case.
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD2"))
    assert decisions(request) == [("approve", "lead2")]


def test_reject_asks_why_in_a_dialog_and_rejects_with_the_reason(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    pressed = click(slack, "reject", "U_LEAD")
    assert acted(client, django_capture_on_commit_callbacks, pressed).status_code == 200
    [opened] = slack.called("views.open")
    assert opened["trigger_id"] == pressed["trigger_id"]
    view = opened["view"]
    assert json.loads(view["private_metadata"]) == {
        "request": request.pk,
        "action": "reject",
        "version": request.version,
        "channel": CHANNEL,
    }
    request.refresh_from_db()
    assert request.state == "pending_approval"  # nothing yet: the dialog asks why

    empty = deliver(client, submission(view, "U_LEAD", "   "))
    assert empty.status_code == 200
    assert empty.json() == {
        "response_action": "errors",
        "errors": {"reason": "Say why the request is rejected."},
    }
    request.refresh_from_db()
    assert request.state == "pending_approval"

    done = acted(
        client,
        django_capture_on_commit_callbacks,
        submission(view, "U_LEAD", "Not this quarter."),
    )
    assert done.status_code == 200 and done.content == b""  # the dialog closes
    request.refresh_from_db()
    assert request.state == "rejected"
    assert Event.objects.get(request=request, action="reject").comment == "Not this quarter."
    [update] = slack.called("chat.update")
    assert "Rejected by lead at" in update["text"] and update["text"].endswith(
        ": Not this quarter."
    )


def test_tech_review_gets_its_own_message_with_its_own_actions(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(
        people["ce"], django_capture_on_commit_callbacks, non_standard_reasons=["scale"]
    )
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD"))
    request.refresh_from_db()
    assert request.state == "tech_review"
    assert {m.stage for m in SlackMessage.objects.filter(request=request)} == {
        "leadership",
        "tech_review",
    }
    assert "Approved by lead" in slack.called("chat.update")[0]["text"]
    second = slack.called("chat.postMessage")[1]
    assert [b["action_id"] for b in second["blocks"][-1]["elements"]] == [
        "tech_approve",
        "tech_reject",
    ]
    # CE Leadership may not take Tech Review's action.
    acted(client, django_capture_on_commit_callbacks, click(slack, "tech_approve", "U_LEAD"))
    assert "Only Tech Review may approve in tech review." in ephemerals(slack)[0][1]
    acted(client, django_capture_on_commit_callbacks, click(slack, "tech_approve", "U_REVIEWER"))
    request.refresh_from_db()
    assert request.state == "queued"
    assert "Approved in tech review by reviewer at" in slack.called("chat.update")[-1]["text"]


# -- what must change nothing ---------------------------------------------------------------------


def test_unsigned_forged_stale_and_future_deliveries_are_refused(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    payload = click(slack, "approve", "U_LEAD")
    now = time.time()
    refused = [
        deliver(client, payload, headers={}),  # unsigned
        deliver(client, payload, secret="not-the-secret"),  # forged
        deliver(client, payload, headers={"HTTP_X_SLACK_SIGNATURE": "v0=" + "0" * 64}),
        # A signature of another body: the payload was changed on the way.
        deliver(
            client,
            payload,
            body=urlencode({"payload": json.dumps(payload)}),
            headers={
                "HTTP_X_SLACK_SIGNATURE": "v0="
                + hmac.new(SECRET.encode(), b"v0:1:other", hashlib.sha256).hexdigest()
            },
        ),
        deliver(client, payload, at=now - 6 * 60),  # stale: a replay of an old delivery
        deliver(client, payload, at=now + 6 * 60),  # from the future
        deliver(client, payload, headers={"HTTP_X_SLACK_REQUEST_TIMESTAMP": "soon"}),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    request.refresh_from_db()
    assert request.state == "pending_approval" and decisions(request) == []
    assert slack.methods() == ["chat.postMessage"]  # nobody looked up, nothing told
    assert SlackDelivery.objects.count() == 0
    # What Slack signed but the portal cannot use is answered 200 and changes nothing.
    other = {**payload, "actions": [{**payload["actions"][0], "action_id": "open_portal"}]}
    for body in [
        "payload=not-json",
        "nothing=here",
        urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}),
        urlencode({"payload": json.dumps({"type": "view_closed"})}),
        urlencode({"payload": json.dumps(other)}),
    ]:
        assert deliver(client, None, body=body).status_code == 200, body
    assert slack.methods() == ["chat.postMessage"] and SlackDelivery.objects.count() == 0
    # A signature within the window is good (Slack's clock may be a little off).
    assert deliver(client, payload, at=now - 4 * 60).status_code == 200
    request.refresh_from_db()
    assert request.state == "queued"


def test_a_delivery_slack_repeats_changes_nothing_the_second_time(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    payload = click(slack, "approve", "U_LEAD")
    first = acted(client, django_capture_on_commit_callbacks, payload)
    again = acted(
        client, django_capture_on_commit_callbacks, payload, headers={"HTTP_X_SLACK_RETRY_NUM": "1"}
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert decisions(request) == [("approve", "lead")]
    assert len(slack.called("users.info")) == 1 and ephemerals(slack) == []
    assert len(slack.called("chat.update")) == 1


def test_a_second_click_after_the_request_moved_is_refused_with_what_happened(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks)
    late = click(slack, "approve", "U_LEAD2")  # lead2 saw the message before lead clicked
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD"))
    acted(client, django_capture_on_commit_callbacks, late)
    [(user, text)] = ephemerals(slack)
    assert user == "U_LEAD2"
    assert f"Request #{request.pk} was not approved: it was decided before." in text
    assert "Approved by lead at" in text
    assert decisions(request) == [("approve", "lead")]


def test_a_click_on_a_message_older_than_an_edit_is_refused(
    people, slack, client, django_capture_on_commit_callbacks
):
    request = posted(people["ce"], django_capture_on_commit_callbacks, justification="Old words.")
    stale = click(slack, "approve", "U_LEAD")
    with django_capture_on_commit_callbacks(execute=True):
        workflow.edit_request(people["ce"], request.pk, {"justification": "New words."})
    run_jobs()
    # The edit shows on the message, whose buttons carry the new version.
    assert "New words." in json.dumps(slack.called("chat.update")[-1]["blocks"])
    acted(client, django_capture_on_commit_callbacks, stale)
    [(_, text)] = ephemerals(slack)
    assert "it changed since this message was posted; look at it again" in text
    request.refresh_from_db()
    assert request.state == "pending_approval"
    acted(client, django_capture_on_commit_callbacks, click(slack, "approve", "U_LEAD"))
    request.refresh_from_db()
    assert request.state == "queued"


# -- the message follows the portal ---------------------------------------------------------------


def test_a_decision_taken_in_the_portal_updates_the_message(
    people, slack, django_capture_on_commit_callbacks
):
    cancelled = posted(people["ce"], django_capture_on_commit_callbacks)
    rejected = posted(people["sales"], django_capture_on_commit_callbacks, slug="initrode")
    with django_capture_on_commit_callbacks(execute=True):
        workflow.perform(people["ce"], cancelled.pk, "cancel", comment="Customer went elsewhere.")
        workflow.perform(people["lead"], rejected.pk, "reject", comment="No budget.")
    run_jobs()
    texts = {args["ts"]: args["text"] for args in slack.called("chat.update")}
    by_request = {m.request_id: m.ts for m in SlackMessage.objects.all()}
    assert "Cancelled by ce at" in texts[by_request[cancelled.pk]]
    assert texts[by_request[cancelled.pk]].endswith(": Customer went elsewhere.")
    assert "Rejected by lead at" in texts[by_request[rejected.pk]]
    assert all(
        b["type"] != "actions" for args in slack.called("chat.update") for b in args["blocks"]
    )


def test_nothing_goes_to_slack_and_the_endpoint_is_absent_when_it_is_off(
    people, client, settings, django_capture_on_commit_callbacks
):
    assert settings.SLACK_APPROVALS is False
    with django_capture_on_commit_callbacks(execute=True):
        file_create(people["ce"])
    assert not Notification.objects.filter(channel="slack_app").exists()
    assert SlackMessage.objects.count() == 0
    assert client.post(URL, data="payload=%7B%7D", content_type="x").status_code == 404
    assert Request.objects.count() == 1
