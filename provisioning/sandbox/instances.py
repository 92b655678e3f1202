"""Instances: the zonal instance endpoints.

An inserted instance is PROVISIONING, then STAGING, then RUNNING (its new disks become READY when
it runs); stop moves it through STOPPING to TERMINATED and start back through STAGING to RUNNING;
delete moves it to STOPPING and then removes it, with the disks it attached with autoDelete. An
insert validates the machine type and every disk (attached by `source` or created from
`initializeParams`, possibly restored from a READY snapshot) before it changes anything.
"""

import random
import re
from typing import TYPE_CHECKING, Any

from provisioning.sandbox.state import (
    API_ROOT,
    NAME_RE,
    NAME_RULE,
    ApiError,
    Args,
    Body,
    Query,
    Resource,
    SandboxBase,
    already_exists,
    in_use,
    invalid,
    new_id,
    not_found,
    not_ready,
    public,
    relative,
    required,
    timestamp,
)

MACHINE_TYPE_RE = re.compile(
    r"^(?:(?:n1|n2|n2d|n4|e2|c2|c2d|c3|c3d|t2d|m1|m2|m3)-(?:standard|highmem|highcpu|megamem|"
    r"ultramem)-\d{1,3}|e2-(?:micro|small|medium)|f1-micro|g1-small)$"
)


class InstancesMixin(SandboxBase):
    """The zonal instance endpoints."""

    if TYPE_CHECKING:
        # Provided by SnapshotsMixin and DisksMixin in the composed Sandbox; declared here for
        # the type checker only (it reports a signature that drifts from the real one).

        def _snapshot_ref(self, link: str, project: str, field: str) -> Resource: ...

        def _disk_size(self, value: Any, snapshot: Resource | None, field: str) -> int: ...

        def _disk_resource(
            self,
            project: str,
            zone: str,
            name: str,
            size: int,
            disk_type: str | None,
            snapshot: Resource | None,
            image: str | None,
            labels: dict[str, str] | None,
        ) -> Resource: ...

    def list_instances(self, a: Args, query: Query) -> Resource:
        prefix = f"projects/{a['project']}/zones/{a['zone']}/instances/"
        return self._list(self.instances, prefix, "compute#instanceList", query)

    def get_instance(self, a: Args, query: Query) -> Resource:
        path = f"projects/{a['project']}/zones/{a['zone']}/instances/{a['instance']}"
        if path not in self.instances:
            raise not_found(path)
        return public(self.instances[path])

    def _instance(self, a: Args) -> tuple[str, Resource]:
        path = f"projects/{a['project']}/zones/{a['zone']}/instances/{a['instance']}"
        if path not in self.instances:
            raise not_found(path)
        return path, self.instances[path]

    def insert_instance(self, a: Args, query: Query, body: Body) -> Resource:
        project, zone = a["project"], a["zone"]
        name = body.get("name")
        if not name:
            raise required("resource.name")
        if not NAME_RE.match(name):
            raise invalid("resource.name", name, NAME_RULE)
        path = f"projects/{project}/zones/{zone}/instances/{name}"
        if path in self.instances:
            raise already_exists(path)
        machine_type = body.get("machineType")
        if not machine_type:
            raise required("resource.machineType")
        parsed = relative(
            machine_type, r"(?:^|/)(?:zones/(?P<zone>[^/]+)/)?machineTypes/(?P<t>[^/]+)"
        )
        if parsed is None:
            raise invalid(
                "resource.machineType",
                machine_type,
                "Must be a URL to a valid Compute resource of the correct type.",
            )
        if not MACHINE_TYPE_RE.match(parsed["t"]) or parsed["zone"] not in (None, zone):
            raise invalid(
                "resource.machineType",
                machine_type,
                f"Machine type with name '{parsed['t']}' does not exist in zone '{zone}'.",
            )
        self_link = API_ROOT + path
        disks_in = body.get("disks") or []
        if not isinstance(disks_in, list) or not disks_in:
            raise required("resource.disks")
        if not any(d.get("boot") for d in disks_in if isinstance(d, dict)):
            disks_in = [{**disks_in[0], "boot": True}, *disks_in[1:]]
        # Validate every disk before changing anything.
        plan: list[tuple[Body, bool, str, Resource | None]] = []
        for index, spec in enumerate(disks_in):
            field = f"resource.disks[{index}]"
            if not isinstance(spec, dict):
                raise invalid(field, spec, "Must be an object.")
            boot = bool(spec.get("boot"))
            if spec.get("source"):
                ref = relative(
                    spec["source"], r"(?:^|/)zones/(?P<zone>[^/]+)/disks/(?P<name>[^/]+)"
                )
                if ref is None:
                    raise invalid(
                        f"{field}.source",
                        spec["source"],
                        "Must be a URL to a valid Compute resource of the correct type.",
                    )
                if ref["zone"] != zone:
                    raise invalid(
                        f"{field}.source", spec["source"], "Disk must be in the instance's zone."
                    )
                disk_path = f"projects/{project}/zones/{zone}/disks/{ref['name']}"
                disk = self.disks.get(disk_path)
                if disk is None:
                    raise not_found(disk_path)
                if disk.get("users"):
                    raise in_use("disk", disk_path, disk["users"][0].removeprefix(API_ROOT))
                if disk["status"] == "DELETING":
                    raise not_ready(disk_path)
                plan.append((spec, boot, disk_path, None))
                continue
            params = spec.get("initializeParams")
            if not isinstance(params, dict):
                raise required(f"{field}.source")
            disk_name = params.get("diskName") or (name if boot else f"{name}-{index}")
            if not NAME_RE.match(disk_name):
                raise invalid(f"{field}.initializeParams.diskName", disk_name, NAME_RULE)
            disk_path = f"projects/{project}/zones/{zone}/disks/{disk_name}"
            if disk_path in self.disks or any(p[2] == disk_path for p in plan):
                raise already_exists(disk_path)
            snapshot = None
            if params.get("sourceSnapshot"):
                snapshot = self._snapshot_ref(
                    params["sourceSnapshot"], project, f"{field}.initializeParams.sourceSnapshot"
                )
            size = self._disk_size(
                params.get("diskSizeGb"), snapshot, f"{field}.initializeParams.diskSizeGb"
            )
            new_disk: Resource | None = self._disk_resource(
                project,
                zone,
                disk_name,
                size,
                params.get("diskType"),
                snapshot,
                params.get("sourceImage") or query.get("sourceImage"),
                params.get("labels"),
            )
            plan.append((spec, boot, disk_path, new_disk))
        now = self.clock()
        attached = []
        for index, (spec, boot, disk_path, new_disk) in enumerate(plan):
            if new_disk is not None:
                self.disks[disk_path] = new_disk
            disk = self.disks[disk_path]
            disk.setdefault("users", []).append(self_link)
            attached.append(
                {
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": spec.get("mode") or "READ_WRITE",
                    "source": API_ROOT + disk_path,
                    "deviceName": spec.get("deviceName") or disk["name"],
                    "index": index,
                    "boot": boot,
                    "autoDelete": bool(spec.get("autoDelete", new_disk is not None)),
                    "diskSizeGb": disk["sizeGb"],
                    "interface": spec.get("interface") or "SCSI",
                }
            )
        interfaces = []
        for index, nic in enumerate(body.get("networkInterfaces") or [{}]):
            network = nic.get("network") or "global/networks/default"
            net = relative(network, r"(?:^|/)networks/(?P<name>[^/]+)")
            interface: Resource = {
                "kind": "compute#networkInterface",
                "name": f"nic{index}",
                "network": API_ROOT
                + f"projects/{project}/global/networks/{net['name'] if net else 'default'}",
                "networkIP": f"10.128.{len(self.instances) // 250}.{len(self.instances) % 250 + 2}",
            }
            if nic.get("subnetwork"):
                interface["subnetwork"] = nic["subnetwork"]
            if nic.get("accessConfigs"):
                interface["accessConfigs"] = [
                    {
                        "kind": "compute#accessConfig",
                        "type": "ONE_TO_ONE_NAT",
                        "name": config.get("name") or "External NAT",
                        "natIP": config.get("natIP") or f"198.51.100.{random.randint(2, 254)}",
                        "networkTier": config.get("networkTier") or "PREMIUM",
                    }
                    for config in nic["accessConfigs"]
                ]
            interfaces.append(interface)
        self.instances[path] = {
            "kind": "compute#instance",
            "id": new_id(),
            "creationTimestamp": timestamp(now),
            "name": name,
            "description": body.get("description", ""),
            "tags": body.get("tags") or {},
            "machineType": API_ROOT + f"projects/{project}/zones/{zone}/machineTypes/{parsed['t']}",
            "status": "PROVISIONING",
            "zone": API_ROOT + f"projects/{project}/zones/{zone}",
            "networkInterfaces": interfaces,
            "disks": attached,
            "metadata": {"kind": "compute#metadata", **(body.get("metadata") or {})},
            "labels": body.get("labels") or {},
            "scheduling": body.get("scheduling") or {"automaticRestart": True},
            "cpuPlatform": "Intel Broadwell",
            "deletionProtection": bool(body.get("deletionProtection", False)),
            "selfLink": self_link,
        }
        return self._new_operation(project, zone, "insert", self_link, "instance.insert", path)

    def delete_instance(self, a: Args, query: Query, body: Body) -> Resource:
        path, instance = self._instance(a)
        if instance.get("deletionProtection"):
            raise ApiError(
                400,
                "resourceIsProtected",
                f"Invalid resource usage: 'Resource cannot be deleted if it's protected "
                f"against deletion.'. ({path})",
            )
        return self._new_operation(
            a["project"], a["zone"], "delete", instance["selfLink"], "instance.delete", path
        )

    def stop_instance(self, a: Args, query: Query, body: Body) -> Resource:
        path, instance = self._instance(a)
        return self._new_operation(
            a["project"], a["zone"], "stop", instance["selfLink"], "instance.stop", path
        )

    def start_instance(self, a: Args, query: Query, body: Body) -> Resource:
        path, instance = self._instance(a)
        return self._new_operation(
            a["project"], a["zone"], "start", instance["selfLink"], "instance.start", path
        )
