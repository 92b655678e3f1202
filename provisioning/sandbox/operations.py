"""Operations: how the sandbox's long calls play out over time, and the operation endpoints.

Every mutating call returns an operation that moves PENDING -> RUNNING -> DONE: it waits
PENDING_SECONDS/speed, then runs RUNNING_SECONDS/speed, and operations on one resource run one
after the other, as Compute queues them. Starting and finishing an operation applies its effect
to the resource it targets (the resource's transitional and final status, deletions); an
operation whose call was faulted `as_operation`, or whose target has gone, ends DONE with an
error. Zone and global operations can be listed, got, deleted and waited on; DONE operations (and
the request ids that point at them) are forgotten after OPERATION_RETENTION_SECONDS.
"""

import time
import uuid

from provisioning.sandbox.state import (
    API_ROOT,
    Args,
    Query,
    Resource,
    SandboxBase,
    new_id,
    not_found,
    public,
    timestamp,
)

# At speed 1 an operation waits PENDING_SECONDS before it runs and then runs RUNNING_SECONDS.
PENDING_SECONDS = 0.05
RUNNING_SECONDS = 0.25
# DONE operations (and the request ids that point at them) are forgotten after a day.
OPERATION_RETENTION_SECONDS = 24 * 3600
HTTP_REASONS = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    412: "PRECONDITION FAILED",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
}
# The code an operation's error carries for a given HTTP status, as Compute reports them.
OPERATION_ERROR_CODES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_NOT_FOUND",
    409: "RESOURCE_ALREADY_EXISTS",
    412: "CONDITION_NOT_MET",
    429: "QUOTA_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


class OperationsMixin(SandboxBase):
    """The operation lifecycle and the zone and global operation endpoints."""

    # ---- time --------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Apply every operation start and finish whose time has come, oldest first."""
        now = self.clock()
        changed = False
        while True:
            due = None
            for op in self.operations.values():
                if op["status"] == "PENDING" and op["_start_at"] <= now:
                    event = (op["_start_at"], 0, op)
                elif op["status"] == "RUNNING" and op["_done_at"] <= now:
                    event = (op["_done_at"], 1, op)
                else:
                    continue
                if due is None or event[:2] < due[:2]:
                    due = event
            if due is None:
                break
            at, phase, op = due
            if phase == 0:
                self._start_operation(op, at)
            else:
                self._finish_operation(op, at)
            changed = True
        expired = [
            path
            for path, op in self.operations.items()
            if op["status"] == "DONE" and op["_done_at"] < now - OPERATION_RETENTION_SECONDS
        ]
        for path in expired:
            del self.operations[path]
        if expired:
            self.request_ids = {
                key: path for key, path in self.request_ids.items() if path in self.operations
            }
            changed = True
        if changed:
            self._save()

    def _new_operation(
        self,
        project: str,
        zone: str | None,
        op_type: str,
        target_link: str,
        effect: str,
        target: str | None = None,
    ) -> Resource:
        now = self.clock()
        scope = f"projects/{project}/zones/{zone}" if zone else f"projects/{project}/global"
        name = (
            f"operation-{int(now * 1000)}-{uuid.uuid4().hex[:13]}-"
            f"{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
        )
        path = f"{scope}/operations/{name}"
        # Operations on one resource run one after the other, as Compute queues them.
        busy_until = max(
            (
                other["_done_at"]
                for other in self.operations.values()
                if other["targetLink"] == target_link and other["status"] != "DONE"
            ),
            default=0,
        )
        start_at = max(now + PENDING_SECONDS / self.speed, busy_until)
        op: Resource = {
            "kind": "compute#operation",
            "id": new_id(),
            "name": name,
            "operationType": op_type,
            "targetLink": target_link,
            "targetId": new_id(),
            "status": "PENDING",
            "user": "sandbox@managed-instance-portal.local",
            "progress": 0,
            "insertTime": timestamp(now),
            "selfLink": API_ROOT + path,
            "_effect": effect,
            "_target": target,
            "_start_at": start_at,
            "_done_at": start_at + RUNNING_SECONDS / self.speed,
        }
        if zone:
            op["zone"] = API_ROOT + f"projects/{project}/zones/{zone}"
        self.operations[path] = op
        return op

    def _fail_operation(self, op: Resource, status: int, code: str, message: str) -> None:
        op["error"] = {"errors": [{"code": code, "message": message}]}
        op["httpErrorStatusCode"] = status
        op["httpErrorMessage"] = HTTP_REASONS.get(status, "ERROR")

    def _start_operation(self, op: Resource, at: float) -> None:
        op["status"] = "RUNNING"
        op["progress"] = 0
        op["startTime"] = timestamp(at)
        effect, target = op["_effect"], op["_target"]
        if effect == "fault":
            return
        resource = self._resource(target)
        if resource is None:
            self._fail_operation(
                op, 404, "RESOURCE_NOT_FOUND", f"The resource '{target}' was not found"
            )
            op["_effect"] = "failed"
            return
        if effect == "instance.insert":
            resource["status"] = "STAGING"
        elif effect == "instance.stop" and resource["status"] != "TERMINATED":
            resource["status"] = "STOPPING"
        elif effect == "instance.start" and resource["status"] == "TERMINATED":
            resource["status"] = "STAGING"
        elif effect == "instance.delete":
            resource["status"] = "STOPPING"
        elif effect in ("disk.delete", "snapshot.delete"):
            resource["status"] = "DELETING"
        elif effect == "snapshot.create":
            resource["status"] = "UPLOADING"

    def _finish_operation(self, op: Resource, at: float) -> None:
        op["status"] = "DONE"
        op["progress"] = 100
        op["endTime"] = timestamp(at)
        effect, target = op["_effect"], op["_target"]
        if effect == "fault":
            fault = op["_fault"]
            self._fail_operation(
                op,
                fault["status"],
                OPERATION_ERROR_CODES.get(fault["status"], fault["reason"]),
                fault["message"],
            )
            return
        resource = self._resource(target)
        if resource is None:
            if effect != "failed":
                self._fail_operation(
                    op, 404, "RESOURCE_NOT_FOUND", f"The resource '{target}' was not found"
                )
            return
        if effect in ("instance.insert", "instance.start"):
            resource["status"] = "RUNNING"
            resource["lastStartTimestamp"] = timestamp(at)
            for attached in resource["disks"]:
                disk = self.disks.get(attached["source"].removeprefix(API_ROOT))
                if disk is not None and disk["status"] in ("CREATING", "RESTORING"):
                    disk["status"] = "READY"
        elif effect == "instance.stop":
            resource["status"] = "TERMINATED"
            resource["lastStopTimestamp"] = timestamp(at)
        elif effect == "instance.delete":
            del self.instances[target]
            for attached in resource["disks"]:
                disk = self.disks.get(attached["source"].removeprefix(API_ROOT))
                if disk is None:
                    continue
                disk["users"] = [u for u in disk.get("users", []) if u != resource["selfLink"]]
                if attached["autoDelete"]:
                    del self.disks[attached["source"].removeprefix(API_ROOT)]
        elif effect == "disk.insert":
            resource["status"] = "READY"
        elif effect == "disk.delete":
            del self.disks[target]
        elif effect == "snapshot.create":
            resource["status"] = "READY"
            resource["storageBytes"] = str(int(resource["diskSizeGb"]) * 1024**3 // 10)
        elif effect == "snapshot.delete":
            del self.snapshots[target]

    # ---- endpoints ---------------------------------------------------------------------------

    def _operation_path(self, a: Args) -> str:
        scope = f"zones/{a['zone']}" if a.get("zone") else "global"
        return f"projects/{a['project']}/{scope}/operations/{a['operation']}"

    def list_operations(self, a: Args, query: Query) -> Resource:
        scope = f"zones/{a['zone']}" if a.get("zone") else "global"
        prefix = f"projects/{a['project']}/{scope}/operations/"
        return self._list(self.operations, prefix, "compute#operationList", query)

    def get_operation(self, a: Args, query: Query) -> Resource:
        path = self._operation_path(a)
        if path not in self.operations:
            raise not_found(path)
        return public(self.operations[path])

    def delete_operation(self, a: Args, query: Query) -> Resource:
        path = self._operation_path(a)
        if path not in self.operations:
            raise not_found(path)
        del self.operations[path]
        self._save()
        return {}

    def wait_operation(self, a: Args, query: Query) -> Resource:
        """Block until the operation is DONE or max_wait passed; answer it either way."""
        path = self._operation_path(a)
        deadline = time.monotonic() + self.max_wait
        while True:
            with self.lock:
                self._advance()
                op = self.operations.get(path)
                if op is None:
                    raise not_found(path)
                remaining = deadline - time.monotonic()
                if op["status"] == "DONE" or remaining <= 0:
                    return public(op)
                due = op["_start_at"] if op["status"] == "PENDING" else op["_done_at"]
                pause = min(max(due - self.clock(), 0.005), 0.1, remaining)
            time.sleep(pause)
