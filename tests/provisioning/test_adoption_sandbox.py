"""Adopting what an older Terraform built, end to end on the sandbox: the VM and its data disk
exist on the Compute server and in no state of the portal's; import_fleet reads the folder that
describes them; the instance's first run (plan -> confirm -> apply, the code the workers run)
imports them instead of creating them, and the instance verifies clean with the same VM."""

import time

import pytest
from django.core.management import call_command

from provisioning import fleet, runs, verify, workspace
from provisioning.compute import Compute
from provisioning.models import Instance
from provisioning.sandbox.server import start_in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,
    pytest.mark.clock_real("Terraform and the sandbox Compute server keep real time"),
]

PROJECT, ZONE = "mi-oldco", "us-central1-f"
FOLDER = """
module "instance" {
  source = "git::https://github.com/example/deploy-managed.git//modules/gcp?ref=v3.2.0"

  slug             = "oldco"
  project_id       = var.project
  zone             = "us-central1-f"
  machine_type     = "n1-standard-16"
  data_disk_size   = 300
  instance_version = "6.0.3"
  deployments      = ["blue"]
  disks            = { blue = {} }
  enable_alerting  = true
}

variable "project" {}
"""


@pytest.fixture
def sandbox(settings, tmp_path):
    url, server = start_in_thread(port=0)
    settings.SANDBOX_COMPUTE_URL = url
    settings.PROVISIONING_BACKEND = "sandbox"
    settings.VAR_DIR = tmp_path / "var"
    yield url
    server.stop()


def build_the_old_way(compute):
    """What the older Terraform left: a data disk and the VM using it, made through the Compute
    API directly (as the sandbox module's provisioners would), outside any state of ours."""
    compute.create_disk(PROJECT, ZONE, "oldco-blue-data", 300)
    compute.insert_vm(
        PROJECT,
        ZONE,
        "oldco-blue",
        "n1-standard-16",
        data_disk="oldco-blue-data",
        labels={"managed-instance": "oldco", "deployment": "blue"},
        metadata={"instance-version": "6.0.3"},
    )
    compute.wait_for_status(PROJECT, ZONE, "oldco-blue", ("RUNNING",))
    vm = compute.get_instance(PROJECT, ZONE, "oldco-blue")
    return vm.id, vm.creation_timestamp


def test_the_first_run_of_an_adopted_instance_imports_what_exists(sandbox, tmp_path):
    started = time.monotonic()
    compute = Compute(sandbox, timeout=30, backoff=0.05)
    vm_id, created = build_the_old_way(compute)
    old = tmp_path / "fleet" / "oldco"
    old.mkdir(parents=True)
    (old / "infrastructure.tf").write_text(FOLDER)
    (old / "terraform.tfvars").write_text('project = "mi-oldco"\n')

    call_command("import_fleet", str(tmp_path / "fleet"))
    instance = Instance.objects.get(slug="oldco")
    assert (instance.status, instance.machine_type, instance.version) == (
        "active",
        "n1-standard-16",
        "6.0.3",
    )
    assert instance.adopted_at and instance.awaits_import()
    assert workspace.stored_state_text(instance) == ""  # nothing of it in our state yet
    before = verify.verify(instance.pk)
    assert before.drift is None, before.drift  # Compute agrees; no plan before the import

    run = runs.start(instance, None, "enable_executors", None, {}, before.verified_at)
    fleet.drive(run)  # plan, confirm, apply: execute_run as a worker runs it
    run.refresh_from_db()

    changes = {c["address"]: c["change"] for c in run.plan_json["resource_changes"]}
    vm = changes['module.instance.terraform_data.vm["blue"]']
    disk = changes['module.instance.terraform_data.data_disk["blue"]']
    project = changes["module.instance.terraform_data.project"]
    for change in (vm, disk, project):
        assert change["importing"]["id"].startswith("projects/mi-oldco")
        assert "create" not in change["actions"] and "delete" not in change["actions"]
    assert vm["importing"]["id"] == "projects/mi-oldco/zones/us-central1-f/instances/oldco-blue"
    assert run.plan_summary["import"] == 9 and run.plan_summary["destroy"] == 0
    assert run.plan_summary["violations"] == []
    # What is created: the executors (the request) and the sandbox's replace keys, nothing else.
    assert sorted(a for a, c in changes.items() if "create" in c["actions"]) == [
        "module.instance.terraform_data.executors[0]",
        'module.instance.terraform_data.identity["blue"]',
    ]
    assert "Plan: 9 to import, 2 to add, 9 to change, 0 to destroy." in run.plan_text

    instance.refresh_from_db()
    assert instance.executors_enabled and not instance.awaits_import()
    assert instance.outputs["variables"]["data_disk_size"] == 300  # the folder's, not a default
    vm_now = compute.get_instance(PROJECT, ZONE, "oldco-blue")
    assert (vm_now.id, vm_now.creation_timestamp, vm_now.status) == (vm_id, created, "RUNNING")
    after = verify.verify(instance.pk)
    assert after.drift is None and after.status == "active", after.drift
    print(f"adoption run: {time.monotonic() - started:.1f} s")
