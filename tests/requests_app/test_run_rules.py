"""Runs and their requests tell one truth (issue: one truth between the portal and the
infrastructure): no run outlives its request, provisioning requests are done only when Compute
agrees, destruction needs a second person, and a resume never restores nothing.

These tests move runs through their states with Run's own methods (no worker, no Terraform), so
they are quick; tests/provisioning/test_engine.py runs the same paths with real workers."""

import pytest
from django.utils import timezone

from provisioning import runs
from provisioning.compute import Compute
from provisioning.models import Instance, Run
from provisioning.sandbox.server import start_in_thread
from requests_app import workflow
from requests_app.models import Event, Request, State
from tests.factories import make_user
from tests.requests_app.test_api import make_instance, post_action, request_in_state

ZONE = "us-central1-f"


@pytest.fixture
def sandbox(settings):
    url, server = start_in_thread(port=0)
    settings.SANDBOX_COMPUTE_URL = url
    settings.PROVISIONING_BACKEND = "sandbox"
    yield Compute(url, timeout=30, backoff=0.05)
    server.stop()


def in_progress(users, kind, slug=None, **extra):
    return request_in_state(users, State.IN_PROGRESS, kind=kind, slug=slug, **extra)


def plan(user, request):
    workflow.perform(user, request.pk, "plan", notify=False)
    return runs.latest_run(request.pk)


def planned(user, request, destroys=()):
    """A run of `request` brought to planned as a worker would, without Terraform."""
    run = plan(user, request)
    assert run.claim("plan", "test-worker", timezone.now())
    summary = {"add": 0, "change": 0, "destroy": len(destroys), "destroyed": list(destroys)}
    assert run.mark_planned(b"plan", "plan text", summary, "digest")
    return run


# -- no run outlives its request ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["queued", "planning", "planned"])
def test_cancel_discards_the_active_run_and_frees_the_instance(users, how):
    request = in_progress(users, "suspend")
    run = plan(users["devops"], request)
    if how in ("planning", "planned"):
        assert run.claim("plan", "test-worker", timezone.now())
    if how == "planned":
        assert run.mark_planned(b"plan", "text", {"add": 0, "change": 0, "destroy": 0}, "d")
    response = post_action(users["ce"], request.pk, "cancel", comment="Customer changed mind.")
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert run.state == "discarded" and run.job_wanted == ""
    assert runs.active_run(run.instance_id) is None
    # The instance is free: a new request for it can plan at once.
    again = in_progress(users, "suspend", slug=request.instance_slug)
    assert plan(users["devops"], again).state == "queued"


def test_a_discarded_queued_run_is_never_planned_by_a_late_worker(users):
    from provisioning.jobs import execute_run

    request = in_progress(users, "suspend")
    run = plan(users["devops"], request)
    assert post_action(users["lead"], request.pk, "cancel").status_code == 200
    assert execute_run(run.pk) == "nothing to do"
    run.refresh_from_db()
    assert run.state == "discarded"


def test_cancel_while_the_run_applies_is_409_and_changes_nothing(users):
    request = in_progress(users, "suspend")
    run = planned(users["devops"], request)
    workflow.perform(users["devops"], request.pk, "confirm", notify=False)
    response = post_action(users["ce"], request.pk, "cancel")
    assert response.status_code == 409, response.content
    assert "applying" in response.json()["detail"]
    run.refresh_from_db()
    request.refresh_from_db()
    assert (run.state, request.state) == ("applying", "in_progress")


def test_wait_on_customer_is_409_while_a_run_applies_but_allowed_while_planned(users):
    request = in_progress(users, "suspend")
    run = planned(users["devops"], request)
    assert post_action(users["devops"], request.pk, "wait_on_customer").status_code == 200
    assert post_action(users["devops"], request.pk, "resume_work").status_code == 200
    workflow.perform(users["devops"], request.pk, "confirm", notify=False)
    assert run.state == "planned"  # the object we hold; the row moved on
    response = post_action(users["devops"], request.pk, "wait_on_customer")
    assert response.status_code == 409, response.content


@pytest.mark.parametrize("action", ["confirm", "discard"])
def test_run_actions_need_the_request_in_progress(users, action):
    request = in_progress(users, "suspend")
    planned(users["devops"], request)
    assert post_action(users["devops"], request.pk, "wait_on_customer").status_code == 200
    response = post_action(users["devops"], request.pk, action)
    assert response.status_code == 409, response.content


# -- done only when Compute agrees --------------------------------------------------------------


def test_mark_done_of_a_create_is_refused_when_compute_shows_no_vm(users, sandbox):
    request = in_progress(users, "create")
    response = post_action(users["devops"], request.pk, "complete")
    assert response.status_code == 409, response.content
    assert "Compute" in response.json()["detail"]
    request.refresh_from_db()
    assert request.state == "in_progress"
    assert not Instance.objects.filter(slug=request.instance_slug, status="active").exists()


def test_mark_done_after_a_discarded_plan_leaves_no_active_instance(users, sandbox):
    request = in_progress(users, "create")
    planned(users["devops"], request)
    workflow.perform(users["devops"], request.pk, "discard", notify=False)
    assert post_action(users["devops"], request.pk, "complete").status_code == 409
    instance = Instance.objects.get(slug=request.instance_slug)
    assert instance.status != "active"


def test_mark_done_is_accepted_when_compute_already_shows_the_outcome(users, sandbox):
    request = in_progress(users, "create")
    slug = request.instance_slug
    # Someone built it by hand: the VM runs in the instance's project.
    sandbox.insert_vm(f"mi-{slug}", ZONE, f"{slug}-blue", "n1-standard-8")
    response = post_action(users["devops"], request.pk, "complete")
    assert response.status_code == 200, response.content
    event = Event.objects.get(request=request, action="complete")
    assert event.data["compute"]["vms"] == {f"{slug}-blue": "RUNNING"}
    assert "RUNNING" in event.comment
    assert Instance.objects.get(slug=slug).status == "active"


def test_mark_done_of_a_suspend_needs_the_vm_gone_and_a_snapshot(users, sandbox):
    instance = make_instance(status="active")
    slug = instance.slug
    sandbox.insert_vm(f"mi-{slug}", ZONE, f"{slug}-blue", "n1-standard-8")
    request = in_progress(users, "suspend", slug=slug)
    assert post_action(users["devops"], request.pk, "complete").status_code == 409
    sandbox.delete_vm(f"mi-{slug}", ZONE, f"{slug}-blue")
    assert post_action(users["devops"], request.pk, "complete").status_code == 409
    sandbox.create_disk(f"mi-{slug}", ZONE, f"{slug}-blue-data", size_gb=10)
    sandbox.create_snapshot(f"mi-{slug}", ZONE, f"{slug}-blue-data", f"{slug}-blue-s1")
    sandbox.delete_disk(f"mi-{slug}", ZONE, f"{slug}-blue-data")
    assert post_action(users["devops"], request.pk, "complete").status_code == 200
    instance.refresh_from_db()
    assert instance.status == "suspended" and instance.outputs["snapshot"] == f"{slug}-blue-s1"


def test_feature_requests_are_done_by_hand_as_before(users):
    request = in_progress(users, "feature")
    assert post_action(users["devops"], request.pk, "complete").status_code == 200


# -- plan guards and four eyes ------------------------------------------------------------------


def test_resume_without_a_snapshot_to_restore_is_refused_at_plan(users):
    instance = make_instance(status="suspended", outputs={})  # its snapshot was never recorded
    request = in_progress(users, "resume", slug=instance.slug)
    response = post_action(users["devops"], request.pk, "plan")
    assert response.status_code == 409, response.content
    assert "snapshot" in response.json()["detail"]
    assert not Run.objects.filter(request_id=request.pk).exists()


def test_a_teardown_is_confirmed_by_a_second_devops_member(users):
    request = in_progress(users, "teardown")
    planned(users["devops"], request, destroys=["terraform_data.project"])
    slug = request.instance_slug
    response = post_action(users["devops"], request.pk, "confirm", confirm=slug)
    assert response.status_code == 403, response.content
    assert "second" in response.json()["detail"] or "someone else" in response.json()["detail"]
    response = post_action(users["devops2"], request.pk, "confirm", confirm=slug)
    assert response.status_code == 200, response.content


def test_four_eyes_hold_for_a_superuser_who_planned(users):
    boss = make_user("boss", "DevOps", superuser=True)
    request = in_progress(users, "teardown")
    planned(boss, request, destroys=["terraform_data.project"])
    response = post_action(boss, request.pk, "confirm", confirm=request.instance_slug)
    assert response.status_code == 403, response.content


def test_an_ordinary_suspend_needs_one_person(users):
    request = in_progress(users, "suspend")
    planned(users["devops"], request, destroys=["terraform_data.vm", "terraform_data.data_disk"])
    assert post_action(users["devops"], request.pk, "confirm").status_code == 200


def test_the_allowed_actions_hide_confirm_from_the_person_who_planned_a_teardown(users):
    request = in_progress(users, "teardown")
    planned(users["devops"], request, destroys=["terraform_data.project"])
    request = Request.objects.get(pk=request.pk)
    assert "confirm" not in workflow.allowed_actions(users["devops"], request)
    assert "confirm" in workflow.allowed_actions(users["devops2"], request)
