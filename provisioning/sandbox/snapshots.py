"""Snapshots: the global snapshot endpoints, and snapshots as disks' and instances' sources.

A snapshot is taken from a READY disk, by `disks.createSnapshot` (a zonal operation on the disk)
or by `snapshots.insert` (a global one); it is CREATING, then UPLOADING, then READY with its
storage size. New disks can only be restored from a READY snapshot.
"""

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
    invalid,
    new_id,
    not_found,
    not_ready,
    public,
    relative,
    required,
    timestamp,
)


class SnapshotsMixin(SandboxBase):
    """The global snapshot endpoints."""

    def _snapshot_ref(self, link: str, project: str, field: str) -> Resource:
        """The READY snapshot a new disk's `sourceSnapshot` (a URL or a bare name) points at."""
        ref = relative(
            link, r"(?:^|/)(?:projects/(?P<project>[^/]+)/)?global/snapshots/(?P<name>[^/]+)"
        )
        if ref is None:
            if NAME_RE.match(link or ""):
                ref = {"project": None, "name": link}
            else:
                raise invalid(
                    field, link, "Must be a URL to a valid Compute resource of the correct type."
                )
        path = f"projects/{ref['project'] or project}/global/snapshots/{ref['name']}"
        snapshot = self.snapshots.get(path)
        if snapshot is None:
            raise not_found(path)
        if snapshot["status"] != "READY":
            raise not_ready(path)
        return snapshot

    def _snapshot_from(
        self, disk: Resource, project: str, zone: str | None, body: Body
    ) -> Resource:
        """Start a snapshot of `disk`: a zonal createSnapshot operation on the disk when `zone`
        is given, else a global insert operation on the snapshot."""
        name = body.get("name")
        if not name:
            raise required("resource.name")
        if not NAME_RE.match(name):
            raise invalid("resource.name", name, NAME_RULE)
        path = f"projects/{project}/global/snapshots/{name}"
        if path in self.snapshots:
            raise already_exists(path)
        if disk["status"] not in ("READY",):
            raise not_ready(disk["selfLink"].removeprefix(API_ROOT))
        disk_zone = disk["zone"].rsplit("/", 1)[-1]
        self.snapshots[path] = {
            "kind": "compute#snapshot",
            "id": new_id(),
            "creationTimestamp": timestamp(self.clock()),
            "name": name,
            "description": body.get("description", ""),
            "status": "CREATING",
            "sourceDisk": disk["selfLink"],
            "sourceDiskId": disk["id"],
            "diskSizeGb": disk["sizeGb"],
            "storageBytes": "0",
            "storageLocations": body.get("storageLocations") or [disk_zone.rsplit("-", 1)[0]],
            "labels": body.get("labels") or {},
            "selfLink": API_ROOT + path,
        }
        # createSnapshot is a zonal operation on the disk; snapshots.insert is a global one.
        return self._new_operation(
            project,
            zone,
            "createSnapshot" if zone else "insert",
            disk["selfLink"] if zone else API_ROOT + path,
            "snapshot.create",
            path,
        )

    def list_snapshots(self, a: Args, query: Query) -> Resource:
        prefix = f"projects/{a['project']}/global/snapshots/"
        return self._list(self.snapshots, prefix, "compute#snapshotList", query)

    def _snapshot(self, a: Args) -> tuple[str, Resource]:
        path = f"projects/{a['project']}/global/snapshots/{a['snapshot']}"
        if path not in self.snapshots:
            raise not_found(path)
        return path, self.snapshots[path]

    def get_snapshot(self, a: Args, query: Query) -> Resource:
        return public(self._snapshot(a)[1])

    def insert_snapshot(self, a: Args, query: Query, body: Body) -> Resource:
        source = body.get("sourceDisk")
        if not source:
            raise required("resource.sourceDisk")
        ref = relative(
            source,
            r"(?:^|/)(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/disks/(?P<name>[^/]+)",
        )
        if ref is None:
            raise invalid(
                "resource.sourceDisk",
                source,
                "Must be a URL to a valid Compute resource of the correct type.",
            )
        disk_path = (
            f"projects/{ref['project'] or a['project']}/zones/{ref['zone']}/disks/{ref['name']}"
        )
        if disk_path not in self.disks:
            raise not_found(disk_path)
        return self._snapshot_from(self.disks[disk_path], a["project"], None, body)

    def delete_snapshot(self, a: Args, query: Query, body: Body) -> Resource:
        path, snapshot = self._snapshot(a)
        return self._new_operation(
            a["project"], None, "delete", snapshot["selfLink"], "snapshot.delete", path
        )
