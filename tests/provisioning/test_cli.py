"""The command lines: the server's entry point and the CLI the sandbox module runs."""

import subprocess
import sys

import requests

from provisioning.compute import Compute
from provisioning.sandbox import cli

from .conftest import PROJECT, ZONE


def test_server_entry_point_prints_its_url_and_keeps_state(tmp_path):
    state = tmp_path / "state.json"
    command = [sys.executable, "-m", "provisioning.sandbox.server", "--port", "0"]
    command += ["--state", str(state), "--speed", "4", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json() == {"ok": True}
        Compute(url, timeout=30).insert_vm(PROJECT, ZONE, "acme-blue", "n1-standard-8")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "instances/acme-blue" in state.read_text()


def test_cli_register_snapshot_deregister(sandbox, compute, capsys):
    url, _ = sandbox
    scope = ["--endpoint", url, "--project", PROJECT, "--zone", ZONE]
    assert cli.main(["disk-create", *scope, "--name", "acme-blue-data", "--size-gb", "20"]) == 0
    register = ["register", *scope, "--name", "acme-blue", "--machine-type", "n1-standard-8"]
    register += ["--data-disk", "acme-blue-data", "--label", "deployment=blue"]
    assert cli.main(register) == 0
    assert cli.main(register) == 0  # converges: already RUNNING
    compute.stop_vm(PROJECT, ZONE, "acme-blue")
    assert cli.main(register) == 0  # a stopped VM is started again
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"

    snapshot = ["snapshot", *scope, "--disk", "acme-blue-data", "--name", "acme-blue-1"]
    assert cli.main(snapshot) == 0
    assert compute.get_snapshot(PROJECT, "acme-blue-1").status == "READY"

    # The data disk is attached: deleting it is refused, as Compute refuses it.
    assert cli.main(["disk-delete", *scope, "--name", "acme-blue-data"]) == 1
    assert "resourceInUseByAnotherResource" in capsys.readouterr().err
    assert cli.main(["deregister", *scope, "--name", "acme-blue"]) == 0
    assert cli.main(["deregister", *scope, "--name", "acme-blue"]) == 0  # already gone
    assert cli.main(["disk-delete", *scope, "--name", "acme-blue-data"]) == 0
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") is None
