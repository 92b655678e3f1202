"""A real Terraform run of the sandbox module against a sandbox Compute server: create, suspend
(scale to zero), resume from the snapshot, destroy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.compute import Compute
from provisioning.sandbox.server import start_in_thread
from provisioning.terraform import command as terraform_command

from .conftest import PROJECT, ZONE

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "provisioning" / "terraform" / "modules" / "sandbox"

OUTPUTS = ["instance_name", "instance_ip", "url", "project_id", "zone", "data_disk", "deployments"]


class Workspace:
    """One customer's Terraform directory: a root module calling the sandbox module."""

    def __init__(self, path, endpoint):
        """The CLI is reached through the environment, as the portal passes it
        (provisioning/workspace.py sandbox_environment): no variable holds a local path."""
        self.path = path
        cli_config = path / "terraform.rc"
        cli_config.write_text("")  # hermetic: no user provider_installation or credentials
        self.env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "SANDBOX_COMPUTE_URL": endpoint,
            "SANDBOX_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT),
        }

    def configure(self, deployments, disks):
        module = {
            "source": str(MODULE),
            "slug": "acme",
            "project_id": PROJECT,
            "zone": ZONE,
            "instance_version": "6.0.0",
            "deployments": deployments,
            "disks": disks,
        }
        config = {
            "module": {"instance": module},
            "output": {name: {"value": f"${{module.instance.{name}}}"} for name in OUTPUTS},
        }
        (self.path / "main.tf.json").write_text(json.dumps(config, indent=2))

    def run(self, *args, ok=(0,)):
        result = subprocess.run(
            [*terraform_command(), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode in ok, (
            f"terraform {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    def apply(self):
        self.run("apply", "-auto-approve", "-input=false", "-no-color")
        outputs = json.loads(self.run("output", "-json", "-no-color").stdout)
        return {name: value["value"] for name, value in outputs.items()}

    def plan_is_empty(self):
        result = self.run("plan", "-detailed-exitcode", "-input=false", "-no-color", ok=(0, 2))
        return result.returncode == 0


@pytest.fixture
def server(tmp_path):
    url, server = start_in_thread(state_path=tmp_path / "sandbox.json")
    yield url, server
    server.stop()


def test_create_suspend_resume_destroy(tmp_path, server):
    url, sandbox_server = server
    compute = Compute(url, timeout=60)
    workspace_dir = tmp_path / "acme"
    workspace_dir.mkdir()
    workspace = Workspace(workspace_dir, url)

    workspace.configure(["blue"], {"blue": {}})
    init = workspace.run("init", "-input=false", "-no-color")
    assert "Installing" not in init.stdout  # nothing to download
    outputs = workspace.apply()
    assert outputs["instance_name"] == "acme-blue"
    assert outputs["data_disk"] == "acme-blue-data"
    assert outputs["deployments"] == {"blue": "acme-blue"}
    assert outputs["url"] == "https://acme.managed.example.com"
    assert outputs["project_id"] == PROJECT and outputs["zone"] == ZONE
    assert outputs["instance_ip"].startswith("203.0.113.")
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"
    instance = compute.get_instance(PROJECT, ZONE, "acme-blue")
    assert instance.machine_type.endswith("/machineTypes/n1-standard-8")
    assert instance.labels["deployment"] == "blue"
    assert any(disk.source.endswith("/disks/acme-blue-data") for disk in instance.disks)
    assert workspace.plan_is_empty()

    # Suspend as the runbook does: snapshot, then deployments = [] and disks = {}.
    compute.create_snapshot(PROJECT, ZONE, "acme-blue-data", "acme-suspend-1")
    workspace.configure([], {})
    outputs = workspace.apply()
    assert outputs["instance_name"] == "" and outputs["data_disk"] == ""
    assert outputs["deployments"] == {}
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") is None
    assert compute.get_disk(PROJECT, ZONE, "acme-blue-data") is None
    assert [s.name for s in compute.list_snapshots(PROJECT, "acme-")] == ["acme-suspend-1"]

    # Resume from the snapshot.
    workspace.configure(["blue"], {"blue": {"from_snapshot": "acme-suspend-1"}})
    outputs = workspace.apply()
    assert outputs["instance_name"] == "acme-blue"
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"
    restored = compute.get_disk(PROJECT, ZONE, "acme-blue-data")
    assert restored.source_snapshot.endswith("/global/snapshots/acme-suspend-1")

    workspace.run("destroy", "-auto-approve", "-input=false", "-no-color")
    state = sandbox_server.sandbox.snapshot_state()
    assert state["instances"] == {} and state["disks"] == {}
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") is None
    # Terraform does not manage snapshots: teardown deletes them separately.
    assert list(state["snapshots"]) == [f"projects/{PROJECT}/global/snapshots/acme-suspend-1"]


def test_failed_register_taints_and_the_next_apply_converges(tmp_path, server):
    url, sandbox_server = server
    compute = Compute(url, timeout=60)
    workspace = Workspace(tmp_path, url)
    workspace.configure(["blue"], {"blue": {}})
    workspace.run("init", "-input=false", "-no-color")
    sandbox_server.sandbox.add_fault(
        method="POST",
        path_regex=r"/zones/us-central1-f/instances$",
        status=403,
        reason="quotaExceeded",
        message="Quota 'CPUS' exceeded. Limit: 8.0 in region us-central1.",
    )
    failed = workspace.run("apply", "-auto-approve", "-input=false", "-no-color", ok=(1,))
    assert "Quota 'CPUS' exceeded" in failed.stderr + failed.stdout
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") is None

    outputs = workspace.apply()  # the fault was used up: the retry creates the VM
    assert outputs["instance_name"] == "acme-blue"
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"
    workspace.run("destroy", "-auto-approve", "-input=false", "-no-color")
    assert sandbox_server.sandbox.snapshot_state()["instances"] == {}
