"""The first run of an adopted instance: the resources that exist go into the portal's Terraform
state (imported) instead of being created.

Their addresses and import ids follow from the adopted settings (`Instance.outputs["variables"]`,
read from the old folder): the module names everything after the slug. Terraform imports only
into resources its configuration has, and never while it destroys, so:

1. What the run keeps (in the run's own configuration) is imported by `import` blocks written
   into the workspace (imports.tf): the saved plan shows the imports, and the confirm applies
   them with the rest.
2. What the run removes (a suspend's VM and data disk, an upgrade's old color, everything of a
   teardown) is imported before the plan with `terraform import`, the adopted settings rendered:
   that writes the state only and changes nothing in GCP; the plan then destroys them.

Before either, Compute must show the VMs and data disks the settings describe: an adoption
never creates what the folder says exists.
"""

from dataclasses import dataclass
from typing import Any

from provisioning.models import Instance

PREFIX = "module.instance."
SERVICES = ("compute.googleapis.com", "logging.googleapis.com", "monitoring.googleapis.com")


@dataclass(frozen=True)
class Adoption:
    """What a run of an adopted instance imports: address -> import id."""

    planned: dict[str, str]  # by import blocks, in the saved plan
    first: dict[str, str]  # by `terraform import`, before the plan

    @property
    def all(self) -> dict[str, str]:
        return {**self.first, **self.planned}


def resources(variables: dict[str, Any], backend: str) -> dict[str, str]:
    """{address: import id} of what `variables` make the module create, as far as an id can be
    named from them (the gcp module's uptime check, alert policy and executor template get ids
    from Google, and the served network endpoint needs the VM's internal address: those are
    left to the plan, which creates them)."""
    slug, project = variables["slug"], variables["project_id"]
    zone = variables["zone"]
    region = variables.get("region") or zone.rsplit("-", 1)[0]
    colors = list(variables.get("deployments") or [])
    disks = list(variables.get("disks") or {})
    at = f"projects/{project}"
    vm = {f'vm["{c}"]': f"{at}/zones/{zone}/instances/{slug}-{c}" for c in colors}
    disk = {f'data_disk["{c}"]': f"{at}/zones/{zone}/disks/{slug}-{c}-data" for c in disks}
    if backend != "gcp":  # the sandbox module's stand-ins, named by the resources they stand for
        found = {
            "project": at,
            "network": f"{at}/global/networks/{slug}-network",
            **disk,
            **vm,
            "address": f"{at}/global/addresses/{slug}-address",
            "network_endpoint_group": f"{at}/zones/{zone}/networkEndpointGroups/{slug}-neg",
            "backend_service": f"{at}/global/backendServices/{slug}-backend-service",
            "firewall": f"{at}/global/firewalls/{slug}-allow-load-balancer",
        }
        if variables.get("enable_alerting"):
            found["alerting[0]"] = f"{at}/uptimeCheckConfigs/{slug}-https"
        if variables.get("enable_executors"):
            found["executors[0]"] = f"{at}/regions/{region}/instanceGroupManagers/{slug}-executors"
        return {f"{PREFIX}terraform_data.{name}": id_ for name, id_ in found.items()}
    global_, regional = f"{at}/global", f"{at}/regions/{region}"
    found = {
        "google_project.instance": at,
        "google_project_iam_audit_config.all_services": f"{project} allServices",
        **{
            f'google_project_service.services["{service}"]': f"{project}/{service}"
            for service in SERVICES
        },
        "google_compute_network.network": f"{global_}/networks/{slug}-network",
        "google_compute_subnetwork.subnet": f"{regional}/subnetworks/{slug}-subnet",
        "google_compute_address.egress": f"{regional}/addresses/{slug}-egress",
        "google_compute_router.router": f"{regional}/routers/{slug}-router",
        "google_compute_router_nat.egress": f"{project}/{region}/{slug}-router/{slug}-nat",
        "google_compute_firewall.load_balancer": f"{global_}/firewalls/{slug}-allow-load-balancer",
        "google_compute_firewall.iap_ssh": f"{global_}/firewalls/{slug}-allow-iap-ssh",
        **{
            f'google_compute_disk.data["{c}"]': f"{at}/zones/{zone}/disks/{slug}-{c}-data"
            for c in disks
        },
        "google_compute_resource_policy.daily_snapshots": (
            f"{regional}/resourcePolicies/{slug}-daily-snapshots"
        ),
        **{
            f'google_compute_disk_resource_policy_attachment.data["{c}"]': (
                f"{project}/{zone}/{slug}-{c}-data/{slug}-daily-snapshots"
            )
            for c in disks
        },
        "google_service_account.vm": (
            f"{at}/serviceAccounts/instance-vm@{project}.iam.gserviceaccount.com"
        ),
        **{f"google_compute_instance.{name}": id_ for name, id_ in vm.items()},
        "google_compute_network_endpoint_group.neg": (
            f"{at}/zones/{zone}/networkEndpointGroups/{slug}-neg"
        ),
        "google_compute_health_check.http": f"{global_}/healthChecks/{slug}-health",
        "google_compute_security_policy.access": f"{global_}/securityPolicies/{slug}-access",
        "google_compute_backend_service.backend": (
            f"{global_}/backendServices/{slug}-backend-service"
        ),
        "google_compute_url_map.https": f"{global_}/urlMaps/{slug}-url-map",
        "google_compute_managed_ssl_certificate.https": (
            f"{global_}/sslCertificates/{slug}-certificate"
        ),
        "google_compute_target_https_proxy.https": (
            f"{global_}/targetHttpsProxies/{slug}-https-proxy"
        ),
        "google_compute_global_address.address": f"{global_}/addresses/{slug}-address",
        "google_compute_global_forwarding_rule.https": f"{global_}/forwardingRules/{slug}-https",
    }
    if variables.get("enable_executors"):
        found["google_compute_region_instance_group_manager.executors[0]"] = (
            f"{regional}/instanceGroupManagers/{slug}-executors"
        )
        found["google_compute_region_autoscaler.executors[0]"] = (
            f"{regional}/autoscalers/{slug}-executors"
        )
    return {f"{PREFIX}{name}": id_ for name, id_ in found.items()}


def for_run(
    instance: Instance, params: dict[str, Any], destroy: bool, backend: str
) -> Adoption | None:
    """What a run with the Terraform variables `params` imports (None: the instance's resources
    are in the portal's state already, or it was never adopted)."""
    adopted = (instance.outputs or {}).get("variables")
    if not adopted or not instance.awaits_import():
        return None
    existing = resources(adopted, backend)
    configured = set() if destroy else set(resources(params, backend))
    return Adoption(
        planned={a: i for a, i in existing.items() if a in configured},
        first={a: i for a, i in existing.items() if a not in configured},
    )


def missing_in_compute(
    variables: dict[str, Any], vms: list[str] | dict[str, str], disks: list[str]
) -> list[str]:
    """The VMs and data disks the adopted settings describe that Compute does not show."""
    slug = variables["slug"]
    wanted = [f"VM {slug}-{color}" for color in variables.get("deployments") or []]
    wanted += [f"data disk {slug}-{color}-data" for color in variables.get("disks") or {}]
    shown = {f"VM {name}" for name in vms} | {f"data disk {name}" for name in disks}
    return [item for item in wanted if item not in shown]


def blocks(imports: dict[str, str]) -> str:
    """imports.tf: one `import` block per address."""
    return "".join(
        f'import {{\n  to = {address}\n  id = "{id_}"\n}}\n\n' for address, id_ in imports.items()
    )
