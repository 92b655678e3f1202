"""The sandbox Compute server: the part of the Compute Engine REST API the portal uses.

It serves the paths and JSON that google-cloud-compute's REST transport sends and parses
(`/compute/v1/projects/{project}/zones/{zone}/instances/...`, disks, global snapshots, zone and
global operations), so the portal and the sandbox Terraform module talk to it through the real
client library. Long calls return operations that move PENDING -> RUNNING -> DONE over time, and
the resources they touch move through the states the real API reports (an inserted instance is
PROVISIONING, then STAGING, then RUNNING). Errors carry Google's JSON error body, so the client
raises the same `google.api_core.exceptions` it raises against Google.

Run it with `python -m provisioning.sandbox.server --port 8090 --state var/sandbox.json`; tests use
`start_in_thread()`. Test hooks live under `/_sandbox/`: `GET /_sandbox/state`, `POST
/_sandbox/faults` ({"method", "path_regex", "status", "reason", "message", "times",
"as_operation"}), `DELETE /_sandbox/faults`, `POST /_sandbox/reset`, `GET /_sandbox/health`.
"""

import argparse
import json
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

API_ROOT = "https://www.googleapis.com/compute/v1/"
# At speed 1 an operation waits PENDING_SECONDS before it runs and then runs RUNNING_SECONDS.
PENDING_SECONDS = 0.05
RUNNING_SECONDS = 0.25
# operations.wait answers after at most this long even when the operation is not DONE (Google
# answers after about two minutes); callers loop.
MAX_WAIT_SECONDS = 20.0
# DONE operations (and the request ids that point at them) are forgotten after a day.
OPERATION_RETENTION_SECONDS = 24 * 3600
STATE_VERSION = 1

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_RULE = "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
MACHINE_TYPE_RE = re.compile(
    r"^(?:(?:n1|n2|n2d|n4|e2|c2|c2d|c3|c3d|t2d|m1|m2|m3)-(?:standard|highmem|highcpu|megamem|"
    r"ultramem)-\d{1,3}|e2-(?:micro|small|medium)|f1-micro|g1-small)$"
)
OPERATION_TYPES = {"create_snapshot_disk": "createSnapshot"}
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
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


class ApiError(Exception):
    """An error answer in Google's JSON error format."""

    def __init__(self, status, reason, message, domain="global"):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain

    def body(self):
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            }
        }


def not_found(path):
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path):
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


def invalid(field, value, why):
    return ApiError(400, "invalid", f"Invalid value for field '{field}': '{value}'. {why}")


def required(field):
    return ApiError(400, "required", f"Required field '{field}' not specified")


def in_use(kind, path, user):
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {kind} resource '{path}' is already being used by '{user}'",
    )


def not_ready(path):
    return ApiError(400, "resourceNotReady", f"The resource '{path}' is not ready")


def timestamp(epoch):
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def new_id():
    return str(random.getrandbits(63))


def public(resource):
    """A resource as the API shows it: without the sandbox's own bookkeeping keys."""
    return {key: value for key, value in resource.items() if not key.startswith("_")}


def relative(link, pattern):
    """The named groups of a full or partial resource URL, or None."""
    if not isinstance(link, str):
        return None
    match = re.search(pattern + "$", link)
    return match.groupdict() if match else None


def compile_filter(expression):
    """A predicate for the list filters the portal sends: `name eq REGEX`, `name = "x"`,
    `name != x`, `name:"prefix*"` (one comparison on a top-level string field)."""
    if not expression or not expression.strip():
        return lambda item: True
    match = re.fullmatch(
        r'\s*(?P<field>[a-zA-Z]+)\s*(?P<op>eq|ne|!=|=|:)\s*(?P<value>"[^"]*"|\'[^\']*\'|\S+)\s*',
        expression,
    )
    if not match:
        raise invalid("filter", expression, "Invalid list filter expression.")
    field, op, value = match["field"], match["op"], match["value"]
    if value[:1] in "\"'" and value[-1:] == value[:1]:
        value = value[1:-1]
    if op in ("eq", "ne"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise invalid("filter", expression, f"Invalid regular expression: {exc}.") from None
        wanted = op == "eq"
        return lambda item: bool(regex.fullmatch(str(item.get(field, "")))) == wanted
    if op == ":":
        regex = re.compile(".*".join(re.escape(part) for part in value.split("*")))
        return lambda item: bool(regex.fullmatch(str(item.get(field, ""))))
    wanted = op == "="
    return lambda item: (str(item.get(field, "")) == value) == wanted


class Sandbox:
    """All state behind one lock. Time moves it forward lazily: every access first applies the
    transitions whose time has come, so no background thread is needed and a restart from the
    state file finishes what was pending."""

    def __init__(self, state_path=None, speed=1.0, clock=time.time, max_wait=MAX_WAIT_SECONDS):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.lock = threading.RLock()
        self.speed = speed
        self.max_wait = max_wait
        self.clock = clock
        self.state_path = Path(state_path) if state_path else None
        self.faults = []
        self._reset()
        if self.state_path and self.state_path.exists():
            self._load()

    # ---- state and persistence -------------------------------------------------------------

    def _reset(self):
        self.instances = {}
        self.disks = {}
        self.snapshots = {}
        self.operations = {}
        self.request_ids = {}

    def _load(self):
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read sandbox state {self.state_path}: {exc}") from exc
        if data.get("version") != STATE_VERSION:
            raise RuntimeError(
                f"sandbox state {self.state_path} has version {data.get('version')!r}, "
                f"expected {STATE_VERSION}; move it away to start empty"
            )
        for key in ("instances", "disks", "snapshots", "operations", "request_ids"):
            setattr(self, key, data.get(key, {}))

    def _save(self):
        if not self.state_path:
            return
        data = {
            "version": STATE_VERSION,
            "instances": self.instances,
            "disks": self.disks,
            "snapshots": self.snapshots,
            "operations": self.operations,
            "request_ids": self.request_ids,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".sandbox-state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.state_path)

    def snapshot_state(self):
        with self.lock:
            self._advance()
            return {
                "instances": {path: public(r) for path, r in self.instances.items()},
                "disks": {path: public(r) for path, r in self.disks.items()},
                "snapshots": {path: public(r) for path, r in self.snapshots.items()},
                "operations": {path: public(r) for path, r in self.operations.items()},
                "faults": list(self.faults),
            }

    def reset(self):
        with self.lock:
            self._reset()
            self.faults = []
            self._save()

    # ---- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        *,
        status,
        reason,
        path_regex=".*",
        method=None,
        message=None,
        times=1,
        domain="global",
        as_operation=False,
    ):
        """Make the next `times` matching requests fail (times=None: until cleared). With
        as_operation the call is accepted and its operation ends DONE with the error instead."""
        re.compile(path_regex)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if not reason:
            raise ValueError("reason is required")
        fault = {
            "id": uuid.uuid4().hex[:8],
            "method": method.upper() if method else None,
            "path_regex": path_regex,
            "status": status,
            "reason": reason,
            "message": message or f"Injected failure: {reason}",
            "times": times,
            "domain": domain,
            "as_operation": bool(as_operation),
        }
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def _take_fault(self, method, path):
        with self.lock:
            for fault in self.faults:
                if fault["method"] not in (None, "*", method):
                    continue
                if not re.search(fault["path_regex"], path):
                    continue
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # ---- time --------------------------------------------------------------------------------

    def _advance(self):
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

    def _new_operation(self, project, zone, op_type, target_link, effect, target=None):
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
        op = {
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

    def _fail_operation(self, op, status, code, message):
        op["error"] = {"errors": [{"code": code, "message": message}]}
        op["httpErrorStatusCode"] = status
        op["httpErrorMessage"] = HTTP_REASONS.get(status, "ERROR")

    def _start_operation(self, op, at):
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

    def _finish_operation(self, op, at):
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

    def _resource(self, path):
        for table in (self.instances, self.disks, self.snapshots):
            if path in table:
                return table[path]
        return None

    # ---- request handling --------------------------------------------------------------------

    def handle(self, method, path, query, body):
        """Answer one API call: returns the JSON payload or raises ApiError."""
        # Faults come first, so that any path can fail, including ones the sandbox does not
        # serve (a test may fake a network endpoint group that cannot be deleted).
        fault = self._take_fault(method, path)
        if fault and not fault["as_operation"]:
            raise ApiError(fault["status"], fault["reason"], fault["message"], fault["domain"])
        for route_method, pattern, handler_name, mutating in ROUTES:
            match = pattern.fullmatch(path)
            if match is None or route_method != method:
                continue
            args = match.groupdict()
            if "project" in args and not PROJECT_RE.match(args["project"]):
                raise invalid("project", args["project"], "Must be a valid project id.")
            if "zone" in args and not ZONE_RE.match(args["zone"]):
                raise invalid("zone", args["zone"], "Unknown zone.")
            if fault and not mutating:
                # Only calls that start operations can fail inside their operation.
                raise ApiError(fault["status"], fault["reason"], fault["message"], fault["domain"])
            handler = getattr(self, handler_name)
            if handler_name == "wait_operation":
                return handler(args, query)
            with self.lock:
                self._advance()
                if not mutating:
                    return handler(args, query)
                return self._mutate(handler_name, args, path, query, body, fault)
        if fault:
            raise ApiError(fault["status"], fault["reason"], fault["message"], fault["domain"])
        if any(pattern.fullmatch(path) for _, pattern, _, _ in ROUTES):
            raise ApiError(405, "methodNotAllowed", f"Method {method} is not allowed on {path}")
        raise ApiError(
            501, "notImplemented", f"The sandbox Compute server does not serve {method} {path}"
        )

    def _mutate(self, handler_name, args, path, query, body, fault):
        """A call that starts an operation; the same requestId answers the same operation."""
        request_id = query.get("requestId")
        key = None
        if request_id:
            try:
                uuid.UUID(request_id)
            except ValueError:
                raise invalid("requestId", request_id, "Must be a valid UUID.") from None
            key = f"{args['project']}/{request_id}"
            earlier = self.operations.get(self.request_ids.get(key, ""))
            if earlier is not None:
                return public(earlier)
        if fault:
            target = re.sub(r"/(stop|start|createSnapshot)$", "", path.removeprefix("/compute/v1/"))
            op = self._new_operation(
                args["project"],
                args.get("zone"),
                OPERATION_TYPES.get(handler_name, handler_name.split("_")[0]),
                API_ROOT + target,
                "fault",
            )
            op["_fault"] = fault
        else:
            op = getattr(self, handler_name)(args, query, parse_body(body))
        if key:
            self.request_ids[key] = op["selfLink"].removeprefix(API_ROOT)
        self._save()
        return public(op)

    def _list(self, table, prefix, kind, query):
        matches = compile_filter(query.get("filter"))
        items = sorted(
            (public(r) for path, r in table.items() if path.startswith(prefix)),
            key=lambda r: r["name"],
        )
        items = [item for item in items if matches(item)]
        try:
            max_results = int(query.get("maxResults", 500))
            offset = int(query.get("pageToken") or 0)
        except ValueError:
            raise invalid("pageToken", query.get("pageToken"), "Invalid page token.") from None
        max_results = max(1, min(max_results, 500))
        page = items[offset : offset + max_results]
        answer = {"kind": kind, "id": prefix.rstrip("/"), "selfLink": API_ROOT + prefix.rstrip("/")}
        if page:
            answer["items"] = page
        if offset + max_results < len(items):
            answer["nextPageToken"] = str(offset + max_results)
        return answer

    # instances

    def list_instances(self, a, query):
        prefix = f"projects/{a['project']}/zones/{a['zone']}/instances/"
        return self._list(self.instances, prefix, "compute#instanceList", query)

    def get_instance(self, a, query):
        path = f"projects/{a['project']}/zones/{a['zone']}/instances/{a['instance']}"
        if path not in self.instances:
            raise not_found(path)
        return public(self.instances[path])

    def _instance(self, a):
        path = f"projects/{a['project']}/zones/{a['zone']}/instances/{a['instance']}"
        if path not in self.instances:
            raise not_found(path)
        return path, self.instances[path]

    def insert_instance(self, a, query, body):
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
        plan = []
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
            new_disk = self._disk_resource(
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
            interface = {
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

    def delete_instance(self, a, query, body):
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

    def stop_instance(self, a, query, body):
        path, instance = self._instance(a)
        return self._new_operation(
            a["project"], a["zone"], "stop", instance["selfLink"], "instance.stop", path
        )

    def start_instance(self, a, query, body):
        path, instance = self._instance(a)
        return self._new_operation(
            a["project"], a["zone"], "start", instance["selfLink"], "instance.start", path
        )

    # disks

    def _snapshot_ref(self, link, project, field):
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

    def _disk_size(self, value, snapshot, field):
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

    def _disk_resource(self, project, zone, name, size, disk_type, snapshot, image, labels):
        parsed = relative(disk_type, r"(?:^|/)diskTypes/(?P<t>[^/]+)") if disk_type else None
        disk_type_name = parsed["t"] if parsed else "pd-standard"
        disk = {
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

    def list_disks(self, a, query):
        prefix = f"projects/{a['project']}/zones/{a['zone']}/disks/"
        return self._list(self.disks, prefix, "compute#diskList", query)

    def _disk(self, a):
        path = f"projects/{a['project']}/zones/{a['zone']}/disks/{a['disk']}"
        if path not in self.disks:
            raise not_found(path)
        return path, self.disks[path]

    def get_disk(self, a, query):
        return public(self._disk(a)[1])

    def insert_disk(self, a, query, body):
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

    def delete_disk(self, a, query, body):
        path, disk = self._disk(a)
        if disk.get("users"):
            raise in_use("disk", path, disk["users"][0].removeprefix(API_ROOT))
        return self._new_operation(
            a["project"], a["zone"], "delete", disk["selfLink"], "disk.delete", path
        )

    def create_snapshot_disk(self, a, query, body):
        path, disk = self._disk(a)
        return self._snapshot_from(disk, a["project"], a["zone"], body)

    def _snapshot_from(self, disk, project, zone, body):
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

    # snapshots

    def list_snapshots(self, a, query):
        prefix = f"projects/{a['project']}/global/snapshots/"
        return self._list(self.snapshots, prefix, "compute#snapshotList", query)

    def _snapshot(self, a):
        path = f"projects/{a['project']}/global/snapshots/{a['snapshot']}"
        if path not in self.snapshots:
            raise not_found(path)
        return path, self.snapshots[path]

    def get_snapshot(self, a, query):
        return public(self._snapshot(a)[1])

    def insert_snapshot(self, a, query, body):
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

    def delete_snapshot(self, a, query, body):
        path, snapshot = self._snapshot(a)
        return self._new_operation(
            a["project"], None, "delete", snapshot["selfLink"], "snapshot.delete", path
        )

    # operations

    def _operation_path(self, a):
        scope = f"zones/{a['zone']}" if a.get("zone") else "global"
        return f"projects/{a['project']}/{scope}/operations/{a['operation']}"

    def list_operations(self, a, query):
        scope = f"zones/{a['zone']}" if a.get("zone") else "global"
        prefix = f"projects/{a['project']}/{scope}/operations/"
        return self._list(self.operations, prefix, "compute#operationList", query)

    def get_operation(self, a, query):
        path = self._operation_path(a)
        if path not in self.operations:
            raise not_found(path)
        return public(self.operations[path])

    def delete_operation(self, a, query):
        path = self._operation_path(a)
        if path not in self.operations:
            raise not_found(path)
        del self.operations[path]
        self._save()
        return {}

    def wait_operation(self, a, query):
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


def parse_body(raw):
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "parseError", f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "Invalid JSON payload received. Expected an object.")
    return body


def _routes():
    project = r"/compute/v1/projects/(?P<project>[^/]+)"
    zone = project + r"/zones/(?P<zone>[^/]+)"
    table = [
        ("GET", zone + r"/instances", "list_instances", False),
        ("POST", zone + r"/instances", "insert_instance", True),
        ("GET", zone + r"/instances/(?P<instance>[^/]+)", "get_instance", False),
        ("DELETE", zone + r"/instances/(?P<instance>[^/]+)", "delete_instance", True),
        ("POST", zone + r"/instances/(?P<instance>[^/]+)/stop", "stop_instance", True),
        ("POST", zone + r"/instances/(?P<instance>[^/]+)/start", "start_instance", True),
        ("GET", zone + r"/disks", "list_disks", False),
        ("POST", zone + r"/disks", "insert_disk", True),
        ("GET", zone + r"/disks/(?P<disk>[^/]+)", "get_disk", False),
        ("DELETE", zone + r"/disks/(?P<disk>[^/]+)", "delete_disk", True),
        ("POST", zone + r"/disks/(?P<disk>[^/]+)/createSnapshot", "create_snapshot_disk", True),
        ("GET", project + r"/global/snapshots", "list_snapshots", False),
        ("POST", project + r"/global/snapshots", "insert_snapshot", True),
        ("GET", project + r"/global/snapshots/(?P<snapshot>[^/]+)", "get_snapshot", False),
        ("DELETE", project + r"/global/snapshots/(?P<snapshot>[^/]+)", "delete_snapshot", True),
    ]
    for scope in (zone, project + r"/global"):
        table += [
            ("GET", scope + r"/operations", "list_operations", False),
            ("GET", scope + r"/operations/(?P<operation>[^/]+)", "get_operation", False),
            ("DELETE", scope + r"/operations/(?P<operation>[^/]+)", "delete_operation", False),
            ("POST", scope + r"/operations/(?P<operation>[^/]+)/wait", "wait_operation", False),
        ]
    return [
        (method, re.compile(pattern), name, mutating) for method, pattern, name, mutating in table
    ]


ROUTES = _routes()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SandboxCompute/1"

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_PUT(self):
        self._handle("PUT")

    def log_message(self, format, *args):
        if not self.server.quiet:
            super().log_message(format, *args)

    def _handle(self, method):
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            if parts.path.startswith("/_sandbox/"):
                status, payload = self._admin(sandbox, method, parts.path, body)
            else:
                status, payload = 200, sandbox.handle(method, parts.path, query, body)
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except Exception:  # noqa: BLE001 - answer like Google's backendError, keep serving
            traceback.print_exc()
            status = 500
            payload = ApiError(500, "backendError", "Internal error in the sandbox").body()
        self._send(status, payload)

    def _admin(self, sandbox, method, path, raw):
        if path == "/_sandbox/health" and method == "GET":
            return 200, {"ok": True}
        if path == "/_sandbox/state" and method == "GET":
            return 200, sandbox.snapshot_state()
        if path == "/_sandbox/reset" and method == "POST":
            sandbox.reset()
            return 200, {"ok": True}
        if path == "/_sandbox/faults":
            if method == "GET":
                return 200, {"faults": sandbox.faults}
            if method == "DELETE":
                sandbox.clear_faults()
                return 200, {"faults": []}
            if method == "POST":
                body = parse_body(raw)
                allowed = {
                    "method",
                    "path_regex",
                    "status",
                    "reason",
                    "message",
                    "times",
                    "domain",
                    "as_operation",
                }
                unknown = set(body) - allowed
                if unknown:
                    raise ApiError(400, "invalid", f"Unknown fault fields: {sorted(unknown)}")
                try:
                    return 200, sandbox.add_fault(**body)
                except (TypeError, ValueError, re.error) as exc:
                    raise ApiError(400, "invalid", f"Bad fault: {exc}") from None
        raise ApiError(404, "notFound", f"No sandbox admin endpoint {method} {path}")

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sandbox, quiet=False):
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self.quiet = quiet
        self._connections = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def get_request(self):
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self):
        """Stop serving, including kept-alive connections (their clients must not keep talking
        to a stopped server that still writes the state file)."""
        self.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


def start_in_thread(
    port=0, host="127.0.0.1", state_path=None, speed=1.0, quiet=True, max_wait=MAX_WAIT_SECONDS
):
    """Start a server on a daemon thread; returns (url, server). Stop it with server.stop()."""
    sandbox = Sandbox(state_path, speed, max_wait=max_wait)
    server = SandboxServer((host, port), sandbox, quiet=quiet)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="sandbox-compute", daemon=True
    )
    thread.start()
    return server.url, server


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m provisioning.sandbox.server",
        description="Serve the sandbox Compute API (the part of Compute Engine the portal uses).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--state", help="JSON file that keeps the state across restarts")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help=f"time scale: an operation takes {PENDING_SECONDS + RUNNING_SECONDS:g}/SPEED seconds",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=MAX_WAIT_SECONDS,
        help="seconds operations.wait blocks before answering a not-yet-DONE operation",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(args.state, args.speed, max_wait=args.max_wait)
    except (RuntimeError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    server = SandboxServer((args.host, args.port), sandbox, quiet=args.quiet)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
