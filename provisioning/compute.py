"""The portal's thin layer over google-cloud-compute, for the sandbox server and Google alike.

`clients(endpoint)` builds the five clients: with an endpoint (the sandbox server's URL) they use
anonymous credentials and the REST transport against it; with None they use Application Default
Credentials against the real API. Only the `*_unary` calls and `ZoneOperationsClient.wait` /
`GlobalOperationsClient.wait` are used, because `ExtendedOperation.result()` polls through clients
built without our endpoint.

Every mutating call carries a `request_id` (a UUID) and is retried with the same id on 429/503,
which the API (and the sandbox) treats as the same call: one operation, one resource.
"""

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

DEFAULT_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
RETRYABLE = (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError)
DONE = compute_v1.Operation.Status.DONE
R = TypeVar("R")


class ComputeError(Exception):
    """A Compute call that did not succeed, with the operation's or the API's own words."""


class OperationFailed(ComputeError):
    def __init__(self, operation: compute_v1.Operation) -> None:
        self.operation = operation
        errors = [f"{e.code}: {e.message}" for e in operation.error.errors]
        status = operation.http_error_status_code
        super().__init__(
            f"operation {operation.name} ({operation.operation_type} "
            f"{operation.target_link}) failed"
            + (f" with HTTP {status}" if status else "")
            + ": "
            + ("; ".join(errors) or operation.http_error_message or "unknown error")
        )

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.operation.error.errors]


class OperationTimeout(ComputeError):
    pass


def error_reason(exc: BaseException) -> str | None:
    """The `reason` of an API error ("notFound", "resourceInUseByAnotherResource", ...)."""
    for error in getattr(exc, "errors", None) or ():
        if isinstance(error, dict) and error.get("reason"):
            return error["reason"]
    return getattr(exc, "reason", None)


@dataclass(frozen=True)
class Clients:
    instances: compute_v1.InstancesClient
    disks: compute_v1.DisksClient
    snapshots: compute_v1.SnapshotsClient
    zone_operations: compute_v1.ZoneOperationsClient
    global_operations: compute_v1.GlobalOperationsClient
    zones: compute_v1.ZonesClient


def clients(endpoint: str | None = None) -> Clients:
    """Clients for the sandbox server at `endpoint` (http://host:port), or for Google when None."""
    options: dict[str, Any]
    if endpoint:
        options = {
            "credentials": AnonymousCredentials(),
            "transport": "rest",
            "client_options": ClientOptions(api_endpoint=endpoint.rstrip("/")),
        }
    else:
        options = {"transport": "rest"}
    return Clients(
        instances=compute_v1.InstancesClient(**options),
        disks=compute_v1.DisksClient(**options),
        snapshots=compute_v1.SnapshotsClient(**options),
        zone_operations=compute_v1.ZoneOperationsClient(**options),
        global_operations=compute_v1.GlobalOperationsClient(**options),
        zones=compute_v1.ZonesClient(**options),
    )


class Compute:
    """The calls the portal makes, each waiting for its operation unless told otherwise."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 600,
        attempts: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.api = clients(endpoint)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    # ---- plumbing ----------------------------------------------------------------------------

    def _call(self, method: Callable[..., R], request: Any) -> R:
        """One API call, retried on 429/503/500 with the same request (and request_id)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return method(request=request)
            except RETRYABLE:
                if attempt == self.attempts:
                    raise
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 10))
        raise AssertionError("unreachable")

    def _wait(
        self,
        wait: Callable[..., compute_v1.Operation],
        request_type: Callable[..., Any],
        timeout: float | None = None,
        **scope: str,
    ) -> compute_v1.Operation:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            operation = self._call(wait, request_type(**scope))
            if operation.status == DONE:
                if operation.error.errors:
                    raise OperationFailed(operation)
                return operation
            if time.monotonic() >= deadline:
                raise OperationTimeout(
                    f"operation {scope['operation']} is still {operation.status.name} "
                    f"after {timeout or self.timeout}s"
                )

    def wait_zone_operation(
        self,
        project: str,
        zone: str,
        operation: compute_v1.Operation | str,
        timeout: float | None = None,
    ) -> compute_v1.Operation:
        """Loop ZoneOperationsClient.wait (best-effort: it may answer before DONE) until DONE;
        raise OperationFailed when the operation ended with an error."""
        name = getattr(operation, "name", operation)
        return self._wait(
            self.api.zone_operations.wait,
            compute_v1.WaitZoneOperationRequest,
            timeout=timeout,
            project=project,
            zone=zone,
            operation=name,
        )

    def wait_global_operation(
        self, project: str, operation: compute_v1.Operation | str, timeout: float | None = None
    ) -> compute_v1.Operation:
        name = getattr(operation, "name", operation)
        return self._wait(
            self.api.global_operations.wait,
            compute_v1.WaitGlobalOperationRequest,
            timeout=timeout,
            project=project,
            operation=name,
        )

    def _zonal(
        self,
        method: Callable[..., compute_v1.Operation],
        request: Any,
        project: str,
        zone: str,
        wait: bool,
    ) -> compute_v1.Operation:
        operation = self._call(method, request)
        return self.wait_zone_operation(project, zone, operation) if wait else operation

    # ---- instances ---------------------------------------------------------------------------

    def get_instance(self, project: str, zone: str, name: str) -> compute_v1.Instance | None:
        """The instance, or None when it does not exist."""
        try:
            return self._call(
                self.api.instances.get,
                compute_v1.GetInstanceRequest(project=project, zone=zone, instance=name),
            )
        except gexc.NotFound:
            return None

    def get_instance_status(self, project: str, zone: str, name: str) -> str | None:
        """ "RUNNING", "TERMINATED", ... or None when the instance does not exist."""
        instance = self.get_instance(project, zone, name)
        return instance.status if instance is not None else None

    def list_zones(self, project: str) -> list[str]:
        """The names of the zones that are UP, sorted."""
        request = compute_v1.ListZonesRequest(project=project)
        found = self._call(self.api.zones.list, request)
        return sorted(zone.name for zone in found if zone.status == "UP")

    def list_vms(self, project: str, zone: str, prefix: str = "") -> list[compute_v1.Instance]:
        """The zone's VMs whose names start with prefix; none when the project does not exist."""
        request = compute_v1.ListInstancesRequest(project=project, zone=zone)
        if prefix:
            request.filter = f"name eq {_re2_escape(prefix)}.*"
        try:
            found = list(self._call(self.api.instances.list, request))
        except gexc.NotFound:
            return []
        return sorted((vm for vm in found if vm.name.startswith(prefix)), key=lambda vm: vm.name)

    def wait_for_status(
        self,
        project: str,
        zone: str,
        name: str,
        statuses: Collection[str] = ("RUNNING",),
        timeout: float | None = None,
    ) -> str | None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            status = self.get_instance_status(project, zone, name)
            if status in statuses:
                return status
            if time.monotonic() >= deadline:
                raise OperationTimeout(f"instance {name} is {status}, not {'/'.join(statuses)}")
            time.sleep(0.2)

    def insert_vm(
        self,
        project: str,
        zone: str,
        name: str,
        machine_type: str,
        *,
        data_disk: str | None = None,
        snapshot: str | None = None,
        data_disk_size_gb: int | None = None,
        image: str = DEFAULT_IMAGE,
        network: str = "default",
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        request_id: str | None = None,
        wait: bool = True,
    ) -> compute_v1.Operation:
        """Create a VM with a boot disk and, optionally, a data disk: the existing disk
        `data_disk`, or a new `<name>-data` disk restored from `snapshot`."""
        disks = [
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=image),
            )
        ]
        if data_disk:
            disks.append(
                compute_v1.AttachedDisk(
                    source=f"projects/{project}/zones/{zone}/disks/{data_disk}",
                    device_name="data",
                    auto_delete=False,
                )
            )
        elif snapshot:
            disks.append(
                compute_v1.AttachedDisk(
                    device_name="data",
                    auto_delete=False,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        disk_name=f"{name}-data",
                        source_snapshot=snapshot_link(project, snapshot),
                        disk_size_gb=data_disk_size_gb or 0,
                    ),
                )
            )
        instance = compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{machine_type}",
            disks=disks,
            network_interfaces=[compute_v1.NetworkInterface(network=f"global/networks/{network}")],
            labels=labels or {},
            metadata=compute_v1.Metadata(
                items=[compute_v1.Items(key=k, value=v) for k, v in (metadata or {}).items()]
            ),
        )
        request = compute_v1.InsertInstanceRequest(
            project=project,
            zone=zone,
            instance_resource=instance,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._zonal(self.api.instances.insert_unary, request, project, zone, wait)

    def delete_vm(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        request_id: str | None = None,
        missing_ok: bool = True,
        wait: bool = True,
    ) -> compute_v1.Operation | None:
        """Delete the VM; with missing_ok a VM that is already gone is not an error (None)."""
        request = compute_v1.DeleteInstanceRequest(
            project=project, zone=zone, instance=name, request_id=request_id or str(uuid.uuid4())
        )
        try:
            return self._zonal(self.api.instances.delete_unary, request, project, zone, wait)
        except gexc.NotFound:
            if missing_ok:
                return None
            raise

    def stop_vm(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        request_id: str | None = None,
        wait: bool = True,
    ) -> compute_v1.Operation:
        request = compute_v1.StopInstanceRequest(
            project=project, zone=zone, instance=name, request_id=request_id or str(uuid.uuid4())
        )
        return self._zonal(self.api.instances.stop_unary, request, project, zone, wait)

    def start_vm(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        request_id: str | None = None,
        wait: bool = True,
    ) -> compute_v1.Operation:
        request = compute_v1.StartInstanceRequest(
            project=project, zone=zone, instance=name, request_id=request_id or str(uuid.uuid4())
        )
        return self._zonal(self.api.instances.start_unary, request, project, zone, wait)

    # ---- disks -------------------------------------------------------------------------------

    def get_disk(self, project: str, zone: str, name: str) -> compute_v1.Disk | None:
        try:
            return self._call(
                self.api.disks.get,
                compute_v1.GetDiskRequest(project=project, zone=zone, disk=name),
            )
        except gexc.NotFound:
            return None

    def list_disks(self, project: str, zone: str, prefix: str = "") -> list[compute_v1.Disk]:
        """The zone's disks whose names start with prefix; none when the project does not exist."""
        request = compute_v1.ListDisksRequest(project=project, zone=zone)
        if prefix:
            request.filter = f"name eq {_re2_escape(prefix)}.*"
        try:
            found = list(self._call(self.api.disks.list, request))
        except gexc.NotFound:
            return []
        return sorted((d for d in found if d.name.startswith(prefix)), key=lambda d: d.name)

    def create_disk(
        self,
        project: str,
        zone: str,
        name: str,
        size_gb: int,
        *,
        snapshot: str | None = None,
        disk_type: str = "pd-ssd",
        request_id: str | None = None,
    ) -> compute_v1.Operation:
        disk = compute_v1.Disk(
            name=name, size_gb=size_gb, type_=f"zones/{zone}/diskTypes/{disk_type}"
        )
        if snapshot:
            disk.source_snapshot = snapshot_link(project, snapshot)
        request = compute_v1.InsertDiskRequest(
            project=project,
            zone=zone,
            disk_resource=disk,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._zonal(self.api.disks.insert_unary, request, project, zone, True)

    def delete_disk(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        request_id: str | None = None,
        missing_ok: bool = True,
    ) -> compute_v1.Operation | None:
        request = compute_v1.DeleteDiskRequest(
            project=project, zone=zone, disk=name, request_id=request_id or str(uuid.uuid4())
        )
        try:
            return self._zonal(self.api.disks.delete_unary, request, project, zone, True)
        except gexc.NotFound:
            if missing_ok:
                return None
            raise

    # ---- snapshots ---------------------------------------------------------------------------

    def create_snapshot(
        self,
        project: str,
        zone: str,
        disk: str,
        snapshot_name: str,
        *,
        labels: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> compute_v1.Snapshot | None:
        """Snapshot the disk (disks.createSnapshot) and wait until the snapshot is READY."""
        request = compute_v1.CreateSnapshotDiskRequest(
            project=project,
            zone=zone,
            disk=disk,
            snapshot_resource=compute_v1.Snapshot(name=snapshot_name, labels=labels or {}),
            request_id=request_id or str(uuid.uuid4()),
        )
        self._zonal(self.api.disks.create_snapshot_unary, request, project, zone, True)
        return self.get_snapshot(project, snapshot_name)

    def get_snapshot(self, project: str, name: str) -> compute_v1.Snapshot | None:
        try:
            return self._call(
                self.api.snapshots.get,
                compute_v1.GetSnapshotRequest(project=project, snapshot=name),
            )
        except gexc.NotFound:
            return None

    def list_snapshots(self, project: str, prefix: str = "") -> list[compute_v1.Snapshot]:
        """The project's snapshots whose names start with prefix, oldest first."""
        request = compute_v1.ListSnapshotsRequest(project=project)
        if prefix:
            request.filter = f"name eq {_re2_escape(prefix)}.*"
        try:
            listed = list(self._call(self.api.snapshots.list, request))
        except gexc.NotFound:
            return []
        found = [s for s in listed if s.name.startswith(prefix)]
        return sorted(found, key=lambda s: (s.creation_timestamp, s.name))

    def delete_snapshot(
        self, project: str, name: str, *, request_id: str | None = None, missing_ok: bool = True
    ) -> compute_v1.Operation | None:
        request = compute_v1.DeleteSnapshotRequest(
            project=project, snapshot=name, request_id=request_id or str(uuid.uuid4())
        )
        try:
            operation = self._call(self.api.snapshots.delete_unary, request)
        except gexc.NotFound:
            if missing_ok:
                return None
            raise
        return self.wait_global_operation(project, operation)


def snapshot_link(project: str, snapshot: str) -> str:
    """A snapshot name or link as the API wants it in sourceSnapshot."""
    if "/" in snapshot:
        return snapshot
    return f"projects/{project}/global/snapshots/{snapshot}"


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if not (c.isalnum() or c in "-_") else c for c in text)
