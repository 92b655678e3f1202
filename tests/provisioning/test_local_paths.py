"""How this machine runs the sandbox module is not the instance's business: no plan, tfvars or
state holds a local path. State written when the module still kept them is cleaned, so it plans
with no change."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import fleet, terraform, verify, workspace
from provisioning.models import Instance
from provisioning.sandbox.server import start_in_thread

ROOT = Path(__file__).resolve().parents[2]
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
    yield url
    server.stop()


def local_paths_in(text, tmp_path):
    found = [
        marker
        for marker in (
            str(ROOT).lstrip("/"),
            sys.executable,
            str(tmp_path),
            "python_bin",
            "pythonpath",
            "sandbox_endpoint",
        )
        if marker in text
    ]
    return found


def state_of(instance):
    folder = workspace.workspace_dir(instance)
    _, env = workspace.render(instance, instance.outputs["variables"])
    pulled = subprocess.run(
        [*terraform.command(), "state", "pull"], cwd=folder, env=env, capture_output=True
    )
    return folder, env, json.loads(pulled.stdout)


def plant_legacy_inputs(instance, without_identity=False):
    """Make the state what the sandbox module used to write: its VM and disks kept the Python,
    the checkout's path and the sandbox URL in their input (and, before fleet adoption, it had
    no identity records of its disks and VMs)."""
    folder, env, state = state_of(instance)
    if without_identity:
        state["resources"] = [r for r in state["resources"] if r["name"] != "identity"]
    legacy = {"python_bin": sys.executable, "pythonpath": str(ROOT), "endpoint": ""}
    for resource in state["resources"]:
        if resource["name"] in ("vm", "data_disk"):
            for item in resource["instances"]:
                for name in ("input", "output"):
                    item["attributes"][name]["value"].update(legacy)
                    item["attributes"][name]["type"][1].update(dict.fromkeys(legacy, "string"))
    state["serial"] += 1
    (folder / "legacy.tfstate").write_text(json.dumps(state))
    terraform.run(["state", "push", "legacy.tfstate"], folder, env)
    assert workspace.has_legacy_state(instance)


def test_no_plan_tfvars_or_state_holds_a_local_path(sandbox, tmp_path):
    instance, built = fleet.build(
        "pathless", "Pathless", machine_type="n1-standard-8", version="6.0.0"
    )
    assert built and instance.status == "active"
    run = instance.runs.get(kind="create")
    assert run.plan_summary["add"] > 0
    assert local_paths_in(run.plan_text, tmp_path) == []
    assert local_paths_in(json.dumps(run.plan_json), tmp_path) == []
    assert local_paths_in(json.dumps(run.params), tmp_path) == []
    # The log is on the request page too: the workspace is named from $PORTAL_VAR_DIR.
    assert local_paths_in(run.log, tmp_path) == [] and "$PORTAL_VAR_DIR/workspaces/" in run.log
    tfvars = (workspace.workspace_dir(instance) / "terraform.tfvars").read_text()
    assert "slug" in tfvars and local_paths_in(tfvars, tmp_path) == []
    assert local_paths_in(workspace.stored_state_text(instance), tmp_path) == []
    assert not workspace.has_legacy_state(instance)


def test_state_of_the_older_module_is_cleaned_and_plans_no_change(sandbox):
    instance, _ = fleet.build("legacy", "Legacy", machine_type="n1-standard-8", version="6.0.0")
    plant_legacy_inputs(instance, without_identity=True)
    assert workspace.lacks_identity(instance)
    problems, _ = verify.terraform_drift(instance)
    assert problems and "terraform_data.vm" in problems[0]  # what is left there shows
    assert 'terraform_data.identity["blue"] create' in problems[0]

    # The seed cleans every live instance (make run on an existing var/)...
    assert fleet.forget_legacy_states() == 1 and fleet.forget_legacy_states() == 0
    assert not workspace.has_legacy_state(instance) and not workspace.lacks_identity(instance)
    assert verify.terraform_drift(instance) == ([], {})

    # ...and so does every run, before it plans.
    plant_legacy_inputs(instance)
    instance = fleet._step(instance, "enable_executors")
    run = instance.runs.get(kind="enable_executors")
    assert run.plan_summary["add"] == 1 and run.plan_summary["change"] == 0
    assert "python_bin" not in run.plan_text and "state: removed" in run.log
    assert Instance.objects.get(pk=instance.pk).executors_enabled
    assert verify.terraform_drift(instance) == ([], {})


def test_legacy_variables_of_old_runs_never_reach_the_module(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    from tests.factories import make_instance

    instance = make_instance("oldrun")
    variables = {**workspace.base_variables(instance), "python_bin": "/x/python"}
    variables["sandbox_endpoint"] = ""
    folder, env = workspace.render(instance, variables)
    assert "python_bin" not in (folder / "main.tf").read_text()
    assert "python_bin" not in (folder / "terraform.tfvars").read_text()
    assert env["SANDBOX_PYTHON"] == sys.executable and env["PYTHONPATH"] == str(ROOT)
