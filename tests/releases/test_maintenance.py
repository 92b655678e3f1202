"""Releases open the fleet's upgrades: one per active instance behind the newest release, filed
by `portal`, queued without approval, due 7 days after publication; supersede; resume."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from provisioning import runs
from provisioning.models import Run
from releases import compliance, opening, progress
from releases.models import Release
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Event, Kind, Request, State
from tests.factories import apply_run_by_hand, make_instance, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.clock]
PUBLISHED = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "devops": make_user("devops", "DevOps"),
        "devops2": make_user("devops2", "DevOps"),
    }


@pytest.fixture(autouse=True)
def pinned():
    with time_machine.travel(NOW, tick=False):
        yield


def upgrades(slug=None):
    found = Request.objects.filter(kind=Kind.UPGRADE)
    return found.filter(instance_slug=slug) if slug else found


def test_a_new_newest_release_opens_one_queued_upgrade_per_active_instance_behind_it(people):
    acme = make_instance("acme", version="6.1.0")
    make_instance("globex", version="6.2.0")  # on it already
    make_instance("initech", version="5.8.0", status="suspended")
    make_instance("hooli", version="")  # version unknown: nothing to compare

    release, created = opening.record("v6.2.0", PUBLISHED, user=people["devops"])

    assert created and release.version == "6.2.0" and release.kind == "monthly"
    [request] = upgrades()
    assert request.instance == acme and request.state == State.QUEUED
    assert request.requested_by.username == "portal"
    assert not request.requested_by.has_usable_password()
    assert not request.requested_by.groups.exists()
    assert request.target_version == "6.2.0" and request.release_published_at == PUBLISHED
    assert request.resolution_breach_at == PUBLISHED + timedelta(days=7)
    assert request.response_started_at is None  # upgrades have no response timer
    [event] = Event.objects.filter(request=request)
    assert (event.action, event.from_state, event.to_state) == ("submit", "", "queued")
    assert event.data == {"from_version": "6.1.0"}
    assert progress.due_at(release) == PUBLISHED + timedelta(days=7)


def test_the_same_release_written_two_ways_is_one_and_opens_nothing_twice(people):
    make_instance("acme", version="6.1.0")
    opening.record("6.2.0", PUBLISHED)
    again, created = opening.record("v6.2.0", PUBLISHED)
    assert not created and Release.objects.count() == 1
    assert opening.open_upgrades() == []
    assert upgrades().count() == 1


def test_newest_is_the_highest_version_not_the_latest_date(people):
    make_instance("acme", version="6.0.0")
    opening.record("6.9.0", PUBLISHED - timedelta(days=30))
    opening.record("6.10.0", PUBLISHED)
    opening.record("6.9.1", PUBLISHED + timedelta(days=1))  # a later patch of an older line
    assert Release.objects.newest().version == "6.10.0"
    # 6.9.0's upgrade was superseded by 6.10.0; 6.9.1 opened nothing.
    assert list(upgrades().filter(state=State.QUEUED).values_list("target_version", flat=True)) == [
        "6.10.0"
    ]
    assert upgrades().get(target_version="6.9.0").state == State.CANCELLED
    assert Release.objects.get(version="6.9.1").kind == "patch"


def test_kinds_follow_the_version_change_unless_emergency():
    opening.record("6.1.0", PUBLISHED)
    assert opening.record("6.1.1", PUBLISHED)[0].kind == "patch"
    assert opening.record("6.2.0", PUBLISHED)[0].kind == "monthly"
    assert opening.record("7.0.0", PUBLISHED)[0].kind == "monthly"
    assert opening.record("7.0.1", PUBLISHED, emergency=True)[0].kind == "emergency"


def test_a_newer_release_supersedes_an_upgrade_not_yet_applying(people):
    make_instance("acme", version="6.0.0")
    opening.record("6.1.0", PUBLISHED)
    [older] = upgrades()
    workflow.perform(people["devops"], older.pk, "pick_up", notify=False)
    workflow.perform(people["devops"], older.pk, "plan", notify=False)  # a planned run...
    assert runs.latest_run(older.pk).state == "queued"

    opening.record("6.1.1", PUBLISHED + timedelta(days=2))

    older.refresh_from_db()
    assert older.state == State.CANCELLED
    cancel = older.events.get(action="cancel")
    assert cancel.comment == "superseded by 6.1.1" and cancel.by.username == "portal"
    assert runs.latest_run(older.pk).state == "discarded"  # ...goes with it
    [newer] = upgrades().filter(state=State.QUEUED)
    assert newer.target_version == "6.1.1"


def test_an_applying_upgrade_finishes_and_the_newer_one_opens_when_it_ends(
    people, django_capture_on_commit_callbacks
):
    acme = make_instance("acme", version="6.0.0")
    opening.record("6.1.0", PUBLISHED)
    [older] = upgrades()
    workflow.perform(people["devops"], older.pk, "pick_up", notify=False)
    workflow.perform(people["devops"], older.pk, "plan", notify=False)
    run = runs.latest_run(older.pk)
    assert run.claim("plan", "w", timezone.now())
    assert run.mark_planned(b"p", "plan", {"add": 1, "change": 0, "destroy": 0}, "d")
    workflow.perform(people["devops"], older.pk, "confirm", notify=False)
    assert Run.objects.get(pk=run.pk).state == "applying"

    opening.record("6.1.1", PUBLISHED + timedelta(days=2))
    older.refresh_from_db()
    assert older.state == State.IN_PROGRESS  # not superseded while applying
    assert upgrades().count() == 1

    # The run applies: the request is done, and then the newer upgrade opens.
    from provisioning import outcomes, signals

    run.refresh_from_db()
    assert run.claim("apply", "w", timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert run.mark_applied({}, timezone.now())
        outcomes.apply_outcome(acme, "upgrade", run.params, {})
        signals.run_applied.send(Run, run=run, at=timezone.now())
    older.refresh_from_db()
    assert older.state == State.DONE
    acme.refresh_from_db()
    assert acme.version == "6.1.0"
    newer = upgrades().get(state=State.QUEUED)
    assert newer.target_version == "6.1.1"


def test_another_open_request_first_then_the_upgrade(people, django_capture_on_commit_callbacks):
    make_instance("acme", version="6.0.0")
    form = FORMS["enable_executors"](data={"instance": "acme", "customer": "Acme"})
    assert form.is_valid(), form.errors
    executors = workflow.file_request(people["ce"], "enable_executors", form.cleaned_data)
    opening.record("6.1.0", PUBLISHED)
    assert not upgrades().exists()  # one open change per instance
    with django_capture_on_commit_callbacks(execute=True):
        workflow.perform(people["ce"], executors.pk, "cancel", notify=False)
    assert upgrades().get().state == State.QUEUED


def test_a_suspended_instance_gets_its_upgrade_when_it_resumes(
    people, django_capture_on_commit_callbacks
):
    initech = make_instance(
        "initech", version="5.8.0", status="suspended", outputs={"snapshot": "initech-blue-s1"}
    )
    opening.record("6.1.0", PUBLISHED)
    assert not upgrades().exists()
    form = FORMS["resume"](data={"instance": "initech", "customer": "Initech"})
    assert form.is_valid(), form.errors
    resume = workflow.file_request(people["ce"], "resume", form.cleaned_data, notify=False)
    workflow.perform(people["lead"], resume.pk, "approve", notify=False)
    workflow.perform(people["devops"], resume.pk, "pick_up", notify=False)
    with django_capture_on_commit_callbacks(execute=True):
        apply_run_by_hand(people["devops"], resume.pk)
    initech.refresh_from_db()
    assert initech.status == "active"
    upgrade = upgrades("initech").get()
    assert upgrade.state == State.QUEUED and upgrade.target_version == "6.1.0"


def test_a_cancelled_maintenance_upgrade_is_not_reopened(
    people, django_capture_on_commit_callbacks
):
    make_instance("acme", version="6.0.0")
    opening.record("6.1.0", PUBLISHED)
    [upgrade] = upgrades()
    with django_capture_on_commit_callbacks(execute=True):
        workflow.perform(people["lead"], upgrade.pk, "cancel", comment="Customer freeze")
    assert opening.open_upgrades() == []
    assert upgrades().filter(state=State.QUEUED).count() == 0


def test_repeated_syncs_open_nothing_more(people):
    for slug in ("alpha1", "alpha2", "alpha3"):
        make_instance(slug, version="6.0.0")
    opening.record("6.1.0", PUBLISHED)
    for _ in range(3):
        assert opening.open_upgrades() == []
    assert upgrades().count() == 3


def test_compliance_counts_upgrades_done_within_the_week(people):
    for slug in ("alpha1", "alpha2", "alpha3"):
        make_instance(slug, version="6.0.0")
    make_instance("alpha4", version="6.1.0")
    opening.record("6.1.0", PUBLISHED)
    first, second, third = upgrades().order_by("instance_slug")
    for request in (first, second):
        workflow.perform(people["devops"], request.pk, "pick_up", notify=False)
    apply_run_by_hand(people["devops"], first.pk)  # within the week (now is day 3)
    with time_machine.travel(PUBLISHED + timedelta(days=8), tick=False):
        apply_run_by_hand(people["devops"], second.pk)  # a day late
        figures = compliance.maintenance()
    assert figures["latest_version"] == "6.1.0"
    assert figures["active_instances"] == 4 and figures["on_latest"] == 3
    [row] = figures["releases"]
    assert (row["upgraded"], row["total"], row["within_sla_pct"]) == (2, 3, 33.3)
