"""The sandbox Compute server's core: errors, shared helpers and the state behind one lock.

`ApiError` and its helpers build Google's JSON error bodies; `compile_filter` understands the list
filters the portal sends. `SandboxBase` holds the resource tables and the faults, keeps them in the
state file, and dispatches one API call to the method its route names: reads answer directly,
mutating calls start an operation (and a `requestId` seen before answers the same operation). The
resources' endpoints and the operation lifecycle are mixins in `instances`, `disks`, `snapshots`
and `operations`; `server` composes them and owns the routes table.
"""

import json
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

API_ROOT = "https://www.googleapis.com/compute/v1/"
# operations.wait answers after at most this long even when the operation is not DONE (Google
# answers after about two minutes); callers loop.
MAX_WAIT_SECONDS = 20.0
STATE_VERSION = 1

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_RULE = "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
OPERATION_TYPES = {"create_snapshot_disk": "createSnapshot"}
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")

# A resource, operation or fault as the sandbox keeps it (JSON, with `_`-prefixed bookkeeping).
Resource = dict[str, Any]
# The named groups of the route a call matched (project, zone, instance, ...).
Args = dict[str, Any]
# The query string, one value per parameter.
Query = dict[str, str]
# A parsed JSON request body.
Body = dict[str, Any]
# (method, path pattern, handler method name, whether the call starts an operation)
Route = tuple[str, re.Pattern[str], str, bool]


class ApiError(Exception):
    """An error answer in Google's JSON error format."""

    def __init__(self, status: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            }
        }


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


def invalid(field: str, value: object, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field}': '{value}'. {why}")


def required(field: str) -> ApiError:
    return ApiError(400, "required", f"Required field '{field}' not specified")


def in_use(kind: str, path: str, user: str) -> ApiError:
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {kind} resource '{path}' is already being used by '{user}'",
    )


def not_ready(path: str) -> ApiError:
    return ApiError(400, "resourceNotReady", f"The resource '{path}' is not ready")


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return str(random.getrandbits(63))


def public(resource: Resource) -> Resource:
    """A resource as the API shows it: without the sandbox's own bookkeeping keys."""
    return {key: value for key, value in resource.items() if not key.startswith("_")}


def relative(link: object, pattern: str) -> dict[str, Any] | None:
    """The named groups of a full or partial resource URL, or None."""
    if not isinstance(link, str):
        return None
    match = re.search(pattern + "$", link)
    return match.groupdict() if match else None


def compile_filter(expression: str | None) -> Callable[[Resource], bool]:
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


def parse_body(raw: bytes) -> Body:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "parseError", f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "Invalid JSON payload received. Expected an object.")
    return body


class SandboxBase:
    """All state behind one lock. Time moves it forward lazily: every access first applies the
    transitions whose time has come, so no background thread is needed and a restart from the
    state file finishes what was pending.

    A concrete sandbox sets `routes` and mixes in the operation lifecycle (`_advance`,
    `_new_operation`) and the endpoints the routes name."""

    routes: ClassVar[Sequence[Route]] = ()

    instances: dict[str, Resource]
    disks: dict[str, Resource]
    snapshots: dict[str, Resource]
    operations: dict[str, Resource]
    request_ids: dict[str, str]
    faults: list[Resource]

    def __init__(
        self,
        state_path: str | os.PathLike[str] | None = None,
        speed: float = 1.0,
        clock: Callable[[], float] = time.time,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
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

    # ---- hooks the operations mixin provides -------------------------------------------------

    def _advance(self) -> None:
        """Apply every operation start and finish whose time has come."""
        raise NotImplementedError

    def _new_operation(
        self,
        project: str,
        zone: str | None,
        op_type: str,
        target_link: str,
        effect: str,
        target: str | None = None,
    ) -> Resource:
        """Queue an operation that applies `effect` to the resource at path `target`."""
        raise NotImplementedError

    # ---- state and persistence -------------------------------------------------------------

    def _reset(self) -> None:
        self.instances = {}
        self.disks = {}
        self.snapshots = {}
        self.operations = {}
        self.request_ids = {}

    def _load(self) -> None:
        assert self.state_path is not None
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

    def _save(self) -> None:
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

    def snapshot_state(self) -> dict[str, Any]:
        with self.lock:
            self._advance()
            return {
                "instances": {path: public(r) for path, r in self.instances.items()},
                "disks": {path: public(r) for path, r in self.disks.items()},
                "snapshots": {path: public(r) for path, r in self.snapshots.items()},
                "operations": {path: public(r) for path, r in self.operations.items()},
                "faults": list(self.faults),
            }

    def reset(self) -> None:
        with self.lock:
            self._reset()
            self.faults = []
            self._save()

    def _resource(self, path: str | None) -> Resource | None:
        for table in (self.instances, self.disks, self.snapshots):
            if path in table:
                return table[path]
        return None

    # ---- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        *,
        status: int,
        reason: str,
        path_regex: str = ".*",
        method: str | None = None,
        message: str | None = None,
        times: int | None = 1,
        domain: str = "global",
        as_operation: bool = False,
    ) -> Resource:
        """Make the next `times` matching requests fail (times=None: until cleared). With
        as_operation the call is accepted and its operation ends DONE with the error instead."""
        re.compile(path_regex)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if not reason:
            raise ValueError("reason is required")
        fault: Resource = {
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

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = []

    def _take_fault(self, method: str, path: str) -> Resource | None:
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

    # ---- request handling --------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Query, body: bytes) -> Resource:
        """Answer one API call: returns the JSON payload or raises ApiError."""
        # Faults come first, so that any path can fail, including ones the sandbox does not
        # serve (a test may fake a network endpoint group that cannot be deleted).
        fault = self._take_fault(method, path)
        if fault and not fault["as_operation"]:
            raise ApiError(fault["status"], fault["reason"], fault["message"], fault["domain"])
        for route_method, pattern, handler_name, mutating in self.routes:
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
        if any(pattern.fullmatch(path) for _, pattern, _, _ in self.routes):
            raise ApiError(405, "methodNotAllowed", f"Method {method} is not allowed on {path}")
        raise ApiError(
            501, "notImplemented", f"The sandbox Compute server does not serve {method} {path}"
        )

    def _mutate(
        self,
        handler_name: str,
        args: Args,
        path: str,
        query: Query,
        body: bytes,
        fault: Resource | None,
    ) -> Resource:
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

    def _list(self, table: dict[str, Resource], prefix: str, kind: str, query: Query) -> Resource:
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
        answer: Resource = {
            "kind": kind,
            "id": prefix.rstrip("/"),
            "selfLink": API_ROOT + prefix.rstrip("/"),
        }
        if page:
            answer["items"] = page
        if offset + max_results < len(items):
            answer["nextPageToken"] = str(offset + max_results)
        return answer
