"""The feed read into releases (sync), two workers syncing at once, the reminder of suspended
instances, and the releases API as each role uses it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from releases import reminders, sync
from releases.models import FeedStatus, Release
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Kind, Notification, Request
from tests.factories import apply_run_by_hand, make_instance, make_user
from tests.releases.test_feed import Feed, release

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


@pytest.fixture
def feed():
    server = Feed()
    yield server
    server.close()


@pytest.fixture
def pinned():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.django_db
@pytest.mark.clock
def test_a_sync_records_new_releases_and_opens_the_newest_ones_upgrades(feed, pinned):
    make_instance("acme", version="6.0.0")
    feed.json(
        "/releases",
        [release("v6.1.0", "2026-11-20T17:00:00Z"), release("v6.0.0", "2026-10-20T17:00:00Z")],
        headers={"ETag": '"one"'},
    )
    outcome = sync.sync(url=feed.url)
    assert outcome.ok and outcome.recorded == ["6.0.0", "6.1.0"]
    assert [r.instance_slug for r in outcome.opened] == ["acme"]
    assert Release.objects.get(version="6.1.0").source == "feed"
    status = sync.status()
    assert status.etag == '"one"' and status.answered_at == NOW and status.error == ""

    # The next poll sends the ETag; a 304 changes nothing.
    feed.raw("/releases", b"", status=304)
    assert sync.sync(url=feed.url).message.startswith("The feed has nothing new")
    assert feed.requests[-1][1].get("If-None-Match") == '"one"'
    assert Request.objects.filter(kind=Kind.UPGRADE).count() == 1


@pytest.mark.django_db
@pytest.mark.clock
@pytest.mark.parametrize(
    "shape",
    ["error", "html", "garbage", "object"],
)
def test_a_feed_that_fails_changes_nothing_and_says_why(feed, pinned, shape):
    make_instance("acme", version="6.0.0")
    if shape == "error":
        feed.raw("/releases", b"oops", status=502, ctype="text/plain")
    elif shape == "html":
        feed.raw("/releases", b"<html>login</html>", ctype="text/html")
    elif shape == "garbage":
        feed.raw("/releases", b'[{"tag_name": "v6.1.0",')
    else:
        feed.json("/releases", {"message": "Not Found"})
    outcome = sync.sync(url=feed.url)
    assert not outcome.ok
    assert not Release.objects.exists() and not Request.objects.exists()
    status = FeedStatus.objects.get()
    assert status.error and status.error_at == NOW and status.answered_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.clock
@pytest.mark.clock_real("two threads, each with its own database connection, sync at once")
def test_two_workers_syncing_at_once_record_and_open_once(feed):
    for slug in ("acme", "globex", "initech"):
        make_instance(slug, version="6.0.0")
    feed.json("/releases", [release("v6.1.0")])
    barrier = threading.Barrier(2)
    outcomes, failures = [], []

    def worker():
        try:
            barrier.wait()
            outcomes.append(sync.sync(url=feed.url))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and len(outcomes) == 2
    assert Release.objects.count() == 1
    upgrades = Request.objects.filter(kind=Kind.UPGRADE)
    assert sorted(upgrades.values_list("instance_slug", flat=True)) == ["acme", "globex", "initech"]
    assert sum(len(o.opened) for o in outcomes) == 3


@pytest.mark.django_db
@pytest.mark.clock
def test_a_suspended_instance_is_reminded_once_at_day_60(settings):
    settings.SLACK_WEBHOOK_URL = ""
    ce = make_user("ce", "CE")
    make_user("lead", "CE Leadership")
    devops = make_user("devops", "DevOps")
    make_instance("initech", version="6.0.0")
    suspended_on = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    with time_machine.travel(suspended_on, tick=False):
        form = FORMS["suspend"](data={"instance": "initech", "customer": "Initech"})
        assert form.is_valid(), form.errors
        request = workflow.file_request(ce, "suspend", form.cleaned_data, notify=False)
        workflow.perform(make_user("lead2", "CE Leadership"), request.pk, "approve", notify=False)
        workflow.perform(devops, request.pk, "pick_up", notify=False)
        apply_run_by_hand(devops, request.pk)

    with time_machine.travel(suspended_on + timedelta(days=59, hours=23), tick=False):
        assert reminders.remind() == 0
    with time_machine.travel(suspended_on + timedelta(days=60, minutes=1), tick=False):
        assert reminders.remind() == 1
        assert reminders.remind() == 0  # once per suspension
    with time_machine.travel(suspended_on + timedelta(days=75), tick=False):
        assert reminders.remind() == 0
    [reminder] = Notification.objects.filter(topic="suspended_reminder")
    assert sorted(reminder.recipients) == [
        "ce@example.com",
        "lead2@example.com",
        "lead@example.com",
    ]
    assert "suspended for 60 days" in reminder.subject and reminder.request == request
    assert mail.outbox == [] or "initech" in mail.outbox[0].subject


@pytest.mark.django_db
@pytest.mark.clock
def test_the_releases_api_as_each_role_uses_it(pinned):
    make_instance("acme", version="6.0.0")
    devops, ce = make_user("devops", "DevOps"), make_user("ce", "CE")
    client = APIClient()
    client.force_authenticate(ce)
    assert client.post("/api/v1/releases/", {"version": "6.1.0"}, format="json").status_code == 403
    client.force_authenticate(devops)
    bad = client.post("/api/v1/releases/", {"version": "six"}, format="json")
    assert bad.status_code == 400 and "version" in bad.json()
    created = client.post(
        "/api/v1/releases/",
        {"version": "v6.1.0", "published_at": "2026-11-20T09:00:00-08:00"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["version"] == "6.1.0" and body["kind"] == "monthly"
    assert body["due_at"].startswith("2026-11-27T09:00:00")
    assert [(i["slug"], i["from_version"], i["state"]) for i in body["instances"]] == [
        ("acme", "6.0.0", "queued")
    ]
    again = client.post("/api/v1/releases/", {"version": "6.1.0"}, format="json")
    assert again.status_code == 409
    client.force_authenticate(ce)
    listed = client.get("/api/v1/releases/").json()
    assert [r["version"] for r in listed["results"]] == ["6.1.0"]
    assert client.get("/api/v1/releases/v6.1.0/").json()["version"] == "6.1.0"
    assert client.get("/api/v1/releases/9.9.9/").status_code == 404
    refused = client.post("/api/v1/releases/6.1.0/waves/", {"instances": ["acme"]}, format="json")
    assert refused.status_code == 403
    client.force_authenticate(devops)
    unknown = client.post("/api/v1/releases/6.1.0/waves/", {"instances": ["nope"]}, format="json")
    assert unknown.status_code == 400 and "nope" in unknown.json()["instances"][0]
    wave = client.post("/api/v1/releases/6.1.0/waves/", {"instances": ["acme"]}, format="json")
    assert wave.status_code == 201, wave.json()
    assert wave.json()["items"][0]["slug"] == "acme" and wave.json()["status"] == "planning"
    early = client.post(
        f"/api/v1/releases/6.1.0/waves/{wave.json()['id']}/confirm/", {}, format="json"
    )
    assert early.status_code == 409 and "still being made" in early.json()["detail"]
    summary = client.get("/api/v1/sla/summary/").json()["maintenance"]
    assert summary["latest_version"] == "6.1.0" and summary["active_instances"] == 1
    assert summary["releases"][0]["total"] == 1
