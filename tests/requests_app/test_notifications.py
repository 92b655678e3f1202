"""Notifications go out after commit, by RQ jobs, once per event; Slack through a local receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import django_rq
import pytest
from django.core import mail
from rq import SimpleWorker

from provisioning.models import Instance
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.jobs import send_notification
from requests_app.models import Notification
from tests.factories import apply_run_by_hand

pytestmark = pytest.mark.clock


class Receiver:
    """A local Slack incoming-webhook stand-in that records bodies and can fail on demand."""

    def __init__(self):
        self.bodies = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(body)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack(settings):
    receiver = Receiver()
    settings.SLACK_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


def run_jobs():
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def file_create(user, slug="hooli", **extra):
    data = {"instance": slug, "customer": "Hooli", "users": 100, **extra}
    form = FORMS["create"](data=data)
    assert form.is_valid(), form.errors
    return workflow.file_request(user, "create", form.cleaned_data)


def test_new_request_tells_ce_leadership_by_mail_and_slack_after_commit(
    users, slack, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = file_create(users["ce"])
    # Nothing is queued before the transaction commits.
    assert django_rq.get_queue("default").count == 0
    for callback in callbacks:
        callback()
    run_jobs()
    assert [m.to for m in mail.outbox] == [["lead@example.com"]]
    assert f"#{request.pk}" in mail.outbox[0].subject
    assert len(slack.bodies) == 1 and "New request to approve" in slack.bodies[0]["text"]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize(
    "non_standard,topic,audience",
    [
        (False, "queued", {"devops@example.com", "devops2@example.com"}),
        (True, "needs_tech_review", {"reviewer@example.com"}),
    ],
)
def test_approval_tells_the_next_desk(
    users, slack, django_capture_on_commit_callbacks, non_standard, topic, audience
):
    extra = {"non_standard_reasons": ["security"]} if non_standard else {}
    request = file_create(users["ce"], **extra)
    with django_capture_on_commit_callbacks(execute=True):
        workflow.perform(users["lead"], request.pk, "approve")
    run_jobs()
    sent = Notification.objects.get(topic=topic, channel="email")
    assert set(sent.recipients) == audience and sent.status == "sent"
    assert any(set(m.to) == audience for m in mail.outbox)


def test_rejection_and_completion_tell_the_requester(users, django_capture_on_commit_callbacks):
    rejected = file_create(users["ce"], slug="rejected-one")
    done = file_create(users["sales"], slug="done-one")
    with django_capture_on_commit_callbacks(execute=True):
        workflow.perform(users["lead"], rejected.pk, "reject", comment="Not viable.")
        workflow.perform(users["lead"], done.pk, "approve")
        workflow.perform(users["devops"], done.pk, "pick_up")
        apply_run_by_hand(users["devops"], done.pk)
    run_jobs()
    to_requester = {
        (n.topic, tuple(n.recipients))
        for n in Notification.objects.filter(topic__in=["rejected", "done"])
    }
    assert to_requester == {("rejected", ("ce@example.com",)), ("done", ("sales@example.com",))}
    assert Instance.objects.get(slug="done-one").status == "active"


def test_the_requesters_mail_says_who_rejected_it_and_why(users):
    request = file_create(users["ce"], slug="rejected-two")
    workflow.perform(users["lead"], request.pk, "reject", comment="Not viable this quarter.")
    [sent] = Notification.objects.filter(topic="rejected", channel="email")
    assert sent.subject.startswith(f"Rejected: #{request.pk} ")
    assert "lead rejected the request: Not viable this quarter." in sent.body
    # People's words, not the action's name.
    assert "reject\n" not in sent.body and "tech_reject" not in sent.body


def test_messages_use_the_historys_verbs(users):
    request = file_create(
        users["ce"], slug="words", non_standard_reasons=["security"], justification="Trial."
    )
    workflow.perform(users["lead"], request.pk, "approve")
    workflow.perform(users["reviewer"], request.pk, "tech_reject", comment="Needs a design.")
    bodies = {n.topic: n.body for n in Notification.objects.filter(channel="email")}
    assert "ce filed the request: Trial." in bodies["new_request"]
    assert "lead approved the request." in bodies["needs_tech_review"]
    assert "reviewer rejected the request in tech review: Needs a design." in bodies["rejected"]


def test_a_failed_send_is_retried_and_never_sent_twice(users, slack):
    slack.fail_next = 1
    request = file_create(users["ce"])
    notification = Notification.objects.get(event__request=request, channel="slack")
    with pytest.raises(Exception, match="500"):
        send_notification(notification.pk)
    notification.refresh_from_db()
    assert notification.status == "pending" and notification.attempts == 1
    assert "500" in notification.last_error
    assert send_notification(notification.pk) == "sent"
    # A duplicate job (a retry racing a relay, a second worker) finds it claimed.
    assert send_notification(notification.pk) == "already handled"
    assert len(slack.bodies) == 1


def test_jobs_are_enqueued_with_retries(users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = file_create(users["ce"])
    notification = Notification.objects.get(event__request=request, channel="email")
    job = django_rq.get_queue("default").fetch_job(f"notification-{notification.pk}")
    assert job is not None and job.retries_left == 4


def test_two_notification_rows_for_one_event_are_refused(users):
    from django.db import IntegrityError, transaction

    request = file_create(users["ce"])
    existing = Notification.objects.get(event__request=request, channel="email")
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            event=existing.event,
            channel="email",
            topic=existing.topic,
            subject="x",
            body="x",
            created_at=existing.created_at,
        )


def test_the_relay_enqueues_what_never_reached_redis(users, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from requests_app.jobs import relay_notifications

    # Filed while Redis was unreachable: the row exists, no job does.
    request = file_create(users["ce"])
    notification = Notification.objects.get(event__request=request, channel="email")
    queue = django_rq.get_queue("default")
    assert queue.fetch_job(f"notification-{notification.pk}") is None
    later = timezone.now() + timedelta(minutes=5)
    assert relay_notifications(now=later) == 1
    # The job is queued now: a second relay leaves it alone.
    assert relay_notifications(now=later) == 0
    run_jobs()
    notification.refresh_from_db()
    assert notification.status == "sent" and len(mail.outbox) == 1


def test_the_cron_module_registers_the_relay():
    import importlib

    from rq import cron

    import portal.cron

    importlib.reload(portal.cron)
    names = [job["func"].__name__ for job in cron._job_data_registry]
    assert "relay_notifications" in names


def test_a_notification_left_sending_by_a_dead_sender_is_sent_again(users):
    from datetime import timedelta

    from django.utils import timezone

    from requests_app.jobs import relay_notifications

    request = file_create(users["ce"])
    notification = Notification.objects.get(event__request=request, channel="email")
    # A worker claimed it and was killed before it could record the outcome.
    Notification.objects.filter(pk=notification.pk).update(
        status="sending", attempts=1, claimed_at=timezone.now()
    )
    # While the claim is fresh the sender may still be at work: nothing happens.
    assert relay_notifications(now=timezone.now() + timedelta(minutes=5)) == 0
    notification.refresh_from_db()
    assert notification.status == "sending"
    # Past the cutoff the row goes back to pending and is sent, once, with a stable Message-ID.
    assert relay_notifications(now=timezone.now() + timedelta(minutes=11)) == 1
    run_jobs()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    [message] = mail.outbox
    assert message.extra_headers["Message-ID"].startswith(f"<notification-{notification.pk}@")


def test_a_notification_whose_sender_died_on_every_attempt_fails_and_devops_sees_it(users, client):
    from datetime import timedelta

    from django.utils import timezone

    from requests_app.jobs import relay_notifications
    from requests_app.notifications import MAX_ATTEMPTS

    request = file_create(users["ce"])
    notification = Notification.objects.get(event__request=request, channel="email")
    Notification.objects.filter(pk=notification.pk).update(
        status="sending", attempts=MAX_ATTEMPTS, claimed_at=timezone.now()
    )
    relay_notifications(now=timezone.now() + timedelta(minutes=11))
    notification.refresh_from_db()
    assert notification.status == "failed" and "stopped while sending" in notification.last_error
    assert mail.outbox == []
    client.force_login(users["devops"])
    page = client.get("/queue/").content.decode()
    assert "Notifications that could not be sent" in page and notification.subject in page
