"""The two Terraform modules: same interface, formatted, and the sandbox one needs no provider."""

import os
import subprocess
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

from provisioning.terraform import command as terraform_command

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "provisioning" / "terraform"
MODULES = TERRAFORM_DIR / "modules"

VARIABLES = {
    "slug",
    "project_id",
    "region",
    "zone",
    "machine_type",
    "data_disk_size",
    "deployments",
    "disks",
    "public",
    "allowed_customer_ip_ranges",
    "enable_alerting",
    "enable_executors",
    "executor_min_replicas",
    "executor_max_replicas",
    "instance_version",
    "domain",
    "billing_account",
    "folder_id",
    "sandbox_endpoint",
    "python_bin",
}
OUTPUTS = {
    "instance_name",
    "instance_ip",
    "url",
    "project_id",
    "zone",
    "data_disk",
    "deployments",
}


def parse(module):
    """All top-level blocks of a module's .tf files, merged by block type."""
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    merged = {}
    for path in sorted((MODULES / module).glob("*.tf")):
        with path.open() as handle:
            for block_type, blocks in hcl2.load(handle, serialization_options=options).items():
                merged.setdefault(block_type, []).extend(blocks)
    return merged


def named(blocks):
    """{name: body} of `variable "name" {...}` / `output "name" {...}` blocks."""
    return {name: body for block in blocks for name, body in block.items()}


def resource_types(module):
    return {kind for block in parse(module).get("resource", []) for kind in block}


@pytest.mark.parametrize("module", ["gcp", "sandbox"])
def test_module_declares_the_agreed_variables_and_outputs(module):
    parsed = parse(module)
    assert set(named(parsed["variable"])) == VARIABLES
    assert set(named(parsed["output"])) == OUTPUTS


def test_both_modules_have_the_same_variables_and_outputs():
    gcp, sandbox = parse("gcp"), parse("sandbox")
    gcp_vars, sandbox_vars = named(gcp["variable"]), named(sandbox["variable"])
    assert gcp_vars.keys() == sandbox_vars.keys()
    for name in gcp_vars:
        for key in ("type", "default"):
            assert gcp_vars[name].get(key) == sandbox_vars[name].get(key), (name, key)
    assert named(gcp["output"]).keys() == named(sandbox["output"]).keys()


def test_sandbox_module_needs_no_provider_and_gcp_module_uses_google():
    sandbox_settings = parse("sandbox")["terraform"]
    assert all("required_providers" not in block for block in sandbox_settings)
    assert resource_types("sandbox") == {"terraform_data"}

    providers = parse("gcp")["terraform"][0]["required_providers"][0]
    assert providers["google"]["source"] == "hashicorp/google"
    assert {
        "google_project",
        "google_compute_network",
        "google_compute_instance",
        "google_compute_disk",
        "google_compute_resource_policy",
        "google_compute_network_endpoint_group",
        "google_compute_backend_service",
        "google_compute_global_address",
        "google_compute_firewall",
    } <= resource_types("gcp")


def test_sandbox_vm_deregisters_on_destroy():
    vm = next(
        block["terraform_data"]["vm"]
        for block in parse("sandbox")["resource"]
        if "vm" in block.get("terraform_data", {})
    )
    provisioners = [p["local-exec"] for p in vm["provisioner"]]
    assert any("cli register" in p["command"] and "when" not in p for p in provisioners)
    assert any(
        "cli deregister" in p["command"] and p.get("when") == "destroy" for p in provisioners
    )


def test_terraform_fmt_check_passes():
    result = subprocess.run(
        [*terraform_command(), "fmt", "-check", "-recursive", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
