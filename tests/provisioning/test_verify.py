"""Verification: every live instance compared with Compute and with a `terraform plan` that
should change nothing; what disagrees is the instance's drift, and DevOps hear of it once."""

import pytest
from django.core import mail

from provisioning import fleet, verify
from provisioning.compute import Compute
from provisioning.models import Instance
from provisioning.sandbox.server import start_in_thread
from requests_app.models import Notification
from tests.factories import make_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,
    pytest.mark.clock_real("Terraform and the sandbox Compute server keep real time"),
]


@pytest.fixture
def sandbox(settings, tmp_path):
    url, server = start_in_thread(port=0)
    settings.SANDBOX_COMPUTE_URL = url
    settings.PROVISIONING_BACKEND = "sandbox"
    settings.VAR_DIR = tmp_path / "var"
    yield Compute(url, timeout=30, backoff=0.05)
    server.stop()


@pytest.fixture
def built(sandbox):
    instance, _ = fleet.build("verity", "Verity Inc", machine_type="n1-standard-8", version="6.0.0")
    return instance


def test_an_instance_as_built_agrees_with_compute_and_terraform(built):
    checked = verify.verify(built.pk)
    assert checked.drift is None and checked.verified_at is not None
    assert checked.status == "active"


def test_a_vm_deleted_by_hand_makes_the_instance_failed_and_devops_hear_once(built, sandbox):
    make_user("devops", "DevOps")
    sandbox.delete_vm("mi-verity", "us-central1-f", "verity-blue")
    checked = verify.verify(built.pk, with_plan=False)
    assert checked.status == "failed"
    assert any("verity-blue should be RUNNING" in p for p in checked.drift["problems"])
    [notification] = Notification.objects.filter(topic="drift")
    assert notification.instance_id == built.pk and notification.recipients == [
        "devops@example.com"
    ]
    # The same finding again: no second message.
    verify.verify(built.pk, with_plan=False)
    assert Notification.objects.filter(topic="drift").count() == 1
    # What the API and the fleet page show.
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user("ce", "CE"))
    body = client.get("/api/v1/instances/verity/").json()
    assert body["status"] == "failed" and body["drift"]["problems"]
    client.force_login(make_user("mgr", "Managers"))
    assert b'data-testid="drift"' in client.get("/dashboards/fleet/").content
    assert mail.outbox == []  # sent by a job, after commit


def test_a_recorded_setting_terraform_would_change_is_drift(built):
    recorded = {**built.outputs["variables"], "machine_type": "n1-standard-16"}
    Instance.objects.filter(pk=built.pk).update(outputs={**built.outputs, "variables": recorded})
    checked = verify.verify(built.pk)
    assert checked.status == "active"
    [problem] = checked.drift["problems"]
    assert "terraform plan" in problem and "terraform_data.vm" in problem


def test_the_verify_button_is_for_devops(built, client):
    client.force_login(make_user("ce", "CE"))
    assert client.post("/instances/verity/verify/").status_code == 403
    client.force_login(make_user("devops", "DevOps"))
    response = client.post("/instances/verity/verify/", follow=True)
    assert response.status_code == 200
    assert "Verification of verity is queued" in response.content.decode()
    import django_rq

    assert django_rq.get_queue("provisioning").fetch_job(f"verify-{built.pk}") is not None
