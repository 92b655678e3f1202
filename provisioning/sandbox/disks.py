"""Disks: the zonal disk endpoints, and the disk resources that instances create.

A new disk is CREATING (RESTORING when made from a snapshot) until its insert operation, or the
insert or start of an instance it is attached to, is DONE; then it is READY. A disk that an
instance uses cannot be deleted or attached elsewhere; a deleted one is DELETING until it is gone.
"""

from typing import TYPE_CHECKING, Any

from provisioning.sandbox.state import (
    API_ROOT,
    NAME_RE,
    NAME_RULE,
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
    public,
    relative,
    required,
    timestamp,
)


class DisksMixin(SandboxBase):
    """The zonal disk endpoints and the disk resource builder."""

    if TYPE_CHECKING:
        # Provided by SnapshotsMixin in the composed Sandbox; declared here for the type
        # checker only (it reports a signature that drifts from the real one).

        def _snapshot_ref(self, link: str, project: str, field: str) -> Resource: ...

        def _snapshot_from(
            self, disk: Resource, project: str, zone: str | None, body: Body
        ) -> Resource: ...

    def _disk_size(self, value: Any, snapshot: Resource | None, field: str) -> int:
        minimum = int(snapshot["diskSizeGb"]) if snapshot else 10
        if value in (None, "", 0, "0"):
            return minimum
        try:
            size = int(value)
        except (TypeError, ValueError):
            raise invalid(field, value, "Must be an integer number of GB.") from None
        if size < minimum or size > 65536:
            raise invalid(
                field,
                value,
                f"Requested disk size cannot be smaller than the "
                f"{'snapshot' if snapshot else 'minimum'} size ({minimum} GB).",
            )
        return size

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
    ) -> Resource:
        parsed = relative(disk_type, r"(?:^|/)diskTypes/(?P<t>[^/]+)") if disk_type else None
        disk_type_name = parsed["t"] if parsed else "pd-standard"
        disk: Resource = {
            "kind": "compute#disk",
            "id": new_id(),
            "creationTimestamp": timestamp(self.clock()),
            "name": name,
            "sizeGb": str(size),
            "zone": API_ROOT + f"projects/{project}/zones/{zone}",
            "status": "RESTORING" if snapshot else "CREATING",
            "type": API_ROOT + f"projects/{project}/zones/{zone}/diskTypes/{disk_type_name}",
            "labels": labels or {},
            "users": [],
            "selfLink": API_ROOT + f"projects/{project}/zones/{zone}/disks/{name}",
        }
        if snapshot:
            disk["sourceSnapshot"] = snapshot["selfLink"]
            disk["sourceSnapshotId"] = snapshot["id"]
        if image:
            disk["sourceImage"] = image
        return disk

    def list_disks(self, a: Args, query: Query) -> Resource:
        prefix = f"projects/{a['project']}/zones/{a['zone']}/disks/"
        return self._list(self.disks, prefix, "compute#diskList", query)

    def _disk(self, a: Args) -> tuple[str, Resource]:
        path = f"projects/{a['project']}/zones/{a['zone']}/disks/{a['disk']}"
        if path not in self.disks:
            raise not_found(path)
        return path, self.disks[path]

    def get_disk(self, a: Args, query: Query) -> Resource:
        return public(self._disk(a)[1])

    def insert_disk(self, a: Args, query: Query, body: Body) -> Resource:
        project, zone = a["project"], a["zone"]
        name = body.get("name")
        if not name:
            raise required("resource.name")
        if not NAME_RE.match(name):
            raise invalid("resource.name", name, NAME_RULE)
        path = f"projects/{project}/zones/{zone}/disks/{name}"
        if path in self.disks:
            raise already_exists(path)
        snapshot = None
        if body.get("sourceSnapshot"):
            snapshot = self._snapshot_ref(
                body["sourceSnapshot"], project, "resource.sourceSnapshot"
            )
        size = self._disk_size(body.get("sizeGb"), snapshot, "resource.sizeGb")
        self.disks[path] = self._disk_resource(
            project,
            zone,
            name,
            size,
            body.get("type"),
            snapshot,
            body.get("sourceImage") or query.get("sourceImage"),
            body.get("labels"),
        )
        return self._new_operation(
            project, zone, "insert", self.disks[path]["selfLink"], "disk.insert", path
        )

    def delete_disk(self, a: Args, query: Query, body: Body) -> Resource:
        path, disk = self._disk(a)
        if disk.get("users"):
            raise in_use("disk", path, disk["users"][0].removeprefix(API_ROOT))
        return self._new_operation(
            a["project"], a["zone"], "delete", disk["selfLink"], "disk.delete", path
        )

    def create_snapshot_disk(self, a: Args, query: Query, body: Body) -> Resource:
        path, disk = self._disk(a)
        return self._snapshot_from(disk, a["project"], a["zone"], body)
