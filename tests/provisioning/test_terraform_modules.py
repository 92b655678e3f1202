"""The two Terraform modules: same interface, formatted, and the sandbox one needs no provider."""

import ipaddress
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


def test_the_sandbox_module_keeps_no_local_path():
    """How this machine reaches the CLI comes from Terraform's environment (SANDBOX_PYTHON,
    PYTHONPATH, SANDBOX_COMPUTE_URL), so no attribute, and no plan, holds a path."""
    source = "".join(path.read_text() for path in (MODULES / "sandbox").glob("*.tf"))
    assert "abspath" not in source and "path.module" not in source
    for name, body in resources("sandbox").items():
        assert not {"python_bin", "pythonpath"} & set(body.get("input", {})), name
    vm = resources("sandbox")[("terraform_data", "vm")]
    assert all("SANDBOX_PYTHON" in p["local-exec"]["command"] for p in vm["provisioner"])


def test_terraform_fmt_check_passes():
    result = subprocess.run(
        [*terraform_command(), "fmt", "-check", "-recursive", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the security section of docs/operations.md, in the gcp module -------------------------------

IAP_RANGE = "35.235.240.0/20"


def resources(module):
    """{(type, name): body} of a module's resources."""
    return {
        (kind, name): body
        for block in parse(module)["resource"]
        for kind, items in block.items()
        for name, body in items.items()
    }


def gcp_locals():
    return {k: v for block in parse("gcp")["locals"] for k, v in block.items()}


def test_ssh_reaches_the_vms_only_through_iap_with_os_login():
    gcp = resources("gcp")
    firewalls = {
        name: body for (kind, name), body in gcp.items() if kind == "google_compute_firewall"
    }
    ssh = [
        body
        for body in firewalls.values()
        if any("22" in rule.get("ports", []) for rule in body.get("allow", []))
    ]
    assert len(ssh) == 1
    assert ssh[0]["source_ranges"] == "${local.iap_ranges}"
    assert gcp_locals()["iap_ranges"] == [IAP_RANGE]
    for body in firewalls.values():
        assert "0.0.0.0/0" not in str(body.get("source_ranges")), body
    # Neither the VMs nor the executors have an external address or accept project SSH keys.
    for key in [
        ("google_compute_instance", "vm"),
        ("google_compute_instance_template", "executor"),
    ]:
        body = gcp[key]
        assert body["metadata"]["enable-oslogin"] == "TRUE", key
        assert body["metadata"]["block-project-ssh-keys"] is True, key
        assert all("access_config" not in nic for nic in body["network_interface"]), key


def test_https_comes_only_from_cloudflare_or_the_customers_allowlist():
    policy = resources("gcp")[("google_compute_security_policy", "access")]
    rules = {rule["priority"]: rule for rule in policy["rule"]}
    log4j = rules[900]
    assert log4j["action"] == "deny(403)"
    assert log4j["match"][0]["expr"][0]["expression"] == "evaluatePreconfiguredExpr('cve-canary')"
    assert min(rules) == 900  # before any allow rule
    first = rules[1000]["match"][0]["config"][0]["src_ip_ranges"]
    assert first == ("${var.public ? local.cloudflare_ranges[0] : var.allowed_customer_ip_ranges}")
    for priority, chunk in ((1001, 1), (1002, 2)):
        assert rules[priority]["action"] == '${var.public ? "allow" : "deny(403)"}'
        ranges = rules[priority]["match"][0]["config"][0]["src_ip_ranges"]
        assert ranges == f"${{local.cloudflare_ranges[{chunk}]}}"
    default = rules[2147483647]
    assert default["action"] == "deny(403)"
    assert default["match"][0]["config"][0]["src_ip_ranges"] == ["*"]

    cloudflare = gcp_locals()["cloudflare_ranges"]
    assert len(cloudflare) == 3 and all(1 <= len(chunk) <= 10 for chunk in cloudflare)
    flat = [ipaddress.ip_network(cidr) for chunk in cloudflare for cidr in chunk]
    assert len(flat) == len(set(flat)) == 22
    assert ipaddress.ip_network("104.16.0.0/13") in flat
    assert ipaddress.ip_network("2606:4700::/32") in flat

    backend = resources("gcp")[("google_compute_backend_service", "backend")]
    assert backend["security_policy"] == "${google_compute_security_policy.access.id}"


def test_audit_logs_and_flow_logs_are_on():
    gcp = resources("gcp")
    audit = gcp[("google_project_iam_audit_config", "all_services")]
    assert audit["service"] == "allServices"
    assert {c["log_type"] for c in audit["audit_log_config"]} == {
        "ADMIN_READ",
        "DATA_READ",
        "DATA_WRITE",
    }
    assert "exempted_members" not in str(audit)
    (flow_logs,) = gcp[("google_compute_subnetwork", "subnet")]["log_config"]
    assert flow_logs["metadata"] == "INCLUDE_ALL_METADATA"
    assert 0 < flow_logs["flow_sampling"] <= 1
