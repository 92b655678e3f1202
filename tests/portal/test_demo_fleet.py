"""`seed_demo` builds the demo fleet for real, and every demo request that waits on DevOps can be
planned and applied: the sandbox Compute server, Terraform and an RQ worker, as in make run."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from provisioning import runs, verify
from provisioning.models import Instance
from provisioning.sandbox.server import start_in_thread
from requests_app import workflow
from requests_app.models import PROVISIONING_KINDS, Request, State
from tests.portal.test_roles_and_seed import EXPECTED, snapshot
from tests.provisioning.test_engine import Worker, wait_for_run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,  # seed_demo files its requests days before now
    pytest.mark.clock_real("Terraform, the sandbox server and an RQ worker keep real time"),
    pytest.mark.lane2,  # two minutes of Terraform: make test runs it beside the suite
]


@pytest.fixture
def sandbox(settings, tmp_path):
    url, server = start_in_thread(port=0, state_path=tmp_path / "compute.json")
    settings.SANDBOX_COMPUTE_URL = url
    settings.PROVISIONING_BACKEND = "sandbox"
    settings.VAR_DIR = tmp_path / "var"
    yield url
    server.stop()


def assert_fleet_agrees_with_compute():
    for instance in Instance.objects.live():
        reading = verify.observe_instance(instance)
        assert verify.status_from(reading) == instance.status, (instance.slug, reading)


def test_the_demo_fleet_is_real_and_every_demo_request_plans_and_applies(settings, sandbox):
    settings.DEMO_PASSWORD = "s3cret-demo"
    call_command("seed_demo")

    User = get_user_model()
    for username, group in EXPECTED.items():
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert user.check_password("s3cret-demo")
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("s3cret-demo")
    states = set(Request.objects.values_list("state", flat=True))
    assert {"pending_approval", "tech_review", "queued", "in_progress", "done"} <= states
    statuses = dict(Instance.objects.values_list("slug", "status"))
    assert statuses == {
        "acme": "active",
        "globex": "active",
        "initech": "suspended",
        "stark": "active",
    }
    assert Instance.objects.get(slug="initech").outputs["snapshot"]
    categories = dict(Instance.objects.values_list("slug", "category"))
    assert categories == {
        "acme": "customer",
        "globex": "internal",
        "initech": "customer",
        "stark": "customer",
    }
    # A manager finds an access request filed by ce in their inbox; one grant is in force.
    waiting = Request.objects.get(kind="access", state=State.PENDING_APPROVAL)
    assert (waiting.requested_by.username, waiting.instance_slug) == ("ce", "acme")
    grant = Request.objects.get(kind="access", state=State.DONE)
    assert grant.whole_category and grant.category == "internal" and grant.expires_at
    assert_fleet_agrees_with_compute()

    before = snapshot()
    call_command("seed_demo")
    assert snapshot() == before

    # Everything that reaches DevOps can be planned and applied, by two DevOps people.
    people = {u.username: u for u in User.objects.all()}
    for request in Request.objects.filter(state=State.PENDING_APPROVAL):
        approver = people["manager"] if request.kind == "access" else people["lead"]
        workflow.perform(approver, request.pk, "approve", notify=False)
    for request in Request.objects.filter(state=State.TECH_REVIEW):
        workflow.perform(people["reviewer"], request.pk, "tech_approve", notify=False)
    worker = Worker(sandbox, settings.VAR_DIR).start()
    try:
        waiting = Request.objects.filter(
            state__in=[State.QUEUED, State.IN_PROGRESS], kind__in=PROVISIONING_KINDS
        ).order_by("pk")
        assert {r.instance_slug for r in waiting} >= {"acme", "initech", "hooli", "umbrella"}
        for request in waiting:
            if request.state == State.QUEUED:
                workflow.perform(people["devops"], request.pk, "pick_up", notify=False)
            workflow.perform(people["devops"], request.pk, "plan", notify=False)
            planned = wait_for_run(request.pk, ("planned", "errored"))
            assert planned.state == "planned", f"{request}: {planned.error}\n{planned.log}"
            assert planned.plan_summary["violations"] == []
            confirmer = people["devops2"] if planned.needs_second_person() else people["devops"]
            workflow.perform(
                confirmer, request.pk, "confirm", confirm=request.instance_slug, notify=False
            )
            applied = wait_for_run(request.pk, ("applied", "errored"))
            assert applied.state == "applied", f"{request}: {applied.error}\n{applied.log}"
            request.refresh_from_db()
            assert request.state == State.DONE
    finally:
        worker.kill()
    acme = Instance.objects.get(slug="acme")
    assert (acme.version, acme.outputs["color"]) == ("6.0.0", "green")
    assert Instance.objects.get(slug="initech").status == "active"
    assert runs.active_run(acme.pk) is None
    assert_fleet_agrees_with_compute()
