"""The sandbox Compute server: the part of the Compute Engine REST API the portal uses.

It serves the paths and JSON that google-cloud-compute's REST transport sends and parses
(`/compute/v1/projects/{project}/zones/{zone}/instances/...`, disks, global snapshots, zone and
global operations), so the portal and the sandbox Terraform module talk to it through the real
client library. Long calls return operations that move PENDING -> RUNNING -> DONE over time, and
the resources they touch move through the states the real API reports. Errors carry Google's JSON
error body, so the client raises the same `google.api_core.exceptions` it raises against Google.

This module composes the server: the routes table, the `Sandbox` built from the resource mixins
(`instances`, `disks`, `snapshots`, with the operation lifecycle in `operations` and the state,
faults and dispatch in `state`), and the HTTP side (`Handler`, `SandboxServer`,
`start_in_thread()`, `main()`).

Run it with `python -m provisioning.sandbox.server --port 8090 --state var/sandbox.json`; tests use
`start_in_thread()`. Test hooks live under `/_sandbox/`: `GET /_sandbox/state`, `POST
/_sandbox/faults` ({"method", "path_regex", "status", "reason", "message", "times",
"as_operation"}), `DELETE /_sandbox/faults`, `POST /_sandbox/reset`, `GET /_sandbox/health`.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from provisioning.sandbox.disks import DisksMixin
from provisioning.sandbox.instances import InstancesMixin
from provisioning.sandbox.operations import PENDING_SECONDS, RUNNING_SECONDS, OperationsMixin
from provisioning.sandbox.snapshots import SnapshotsMixin
from provisioning.sandbox.state import (
    MAX_WAIT_SECONDS,
    ApiError,
    Resource,
    Route,
    SandboxBase,
    parse_body,
)
from provisioning.sandbox.zones import ZonesMixin


def _routes() -> list[Route]:
    project = r"/compute/v1/projects/(?P<project>[^/]+)"
    zone = project + r"/zones/(?P<zone>[^/]+)"
    table = [
        ("GET", project + r"/zones", "list_zones", False),
        ("GET", zone, "get_zone", False),
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


class Sandbox(InstancesMixin, DisksMixin, SnapshotsMixin, ZonesMixin, OperationsMixin, SandboxBase):
    """The sandbox Compute API: every resource's endpoints over one state, served by ROUTES."""

    routes = ROUTES


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SandboxCompute/1"
    server: "SandboxServer"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
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

    def _admin(self, sandbox: Sandbox, method: str, path: str, raw: bytes) -> tuple[int, Resource]:
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

    def _send(self, status: int, payload: Resource) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, quiet: bool = False) -> None:
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self.quiet = quiet
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self) -> str:
        # An AF_INET server: the host is a str (typeshed also allows bytes).
        host, port = cast(tuple[str, int], self.server_address[:2])
        return f"http://{host}:{port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
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
    port: int = 0,
    host: str = "127.0.0.1",
    state_path: str | os.PathLike[str] | None = None,
    speed: float = 1.0,
    quiet: bool = True,
    max_wait: float = MAX_WAIT_SECONDS,
) -> tuple[str, "SandboxServer"]:
    """Start a server on a daemon thread; returns (url, server). Stop it with server.stop()."""
    sandbox = Sandbox(state_path, speed, max_wait=max_wait)
    server = SandboxServer((host, port), sandbox, quiet=quiet)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="sandbox-compute", daemon=True
    )
    thread.start()
    return server.url, server


def main(argv: list[str] | None = None) -> int:
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
