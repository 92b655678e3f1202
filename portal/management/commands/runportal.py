"""`make run`: the web portal, an RQ worker with its scheduler, and what they need, in one command.

Each child runs in its own session so that Ctrl-C (or SIGTERM) reaches this supervisor, which then
stops every child's whole process group and waits for it: nothing is left running.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from portal import devservices


class Command(BaseCommand):
    help = "Run the web portal, an RQ worker with its scheduler, and a private Redis if needed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)

        try:
            if not os.environ.get("REDIS_URL"):
                if shutil.which("redis-server"):
                    env["REDIS_URL"] = devservices.start_private_redis(persist=True)
                    self.stdout.write(f"Private Redis under var/redis at {env['REDIS_URL']}")
                    self.private_redis = True
                else:
                    env["RQ_INPROCESS"] = "true"
                    self.stdout.write(
                        self.style.WARNING("redis-server not installed: jobs run in-process")
                    )
            if (
                not os.environ.get("SANDBOX_COMPUTE_URL")
                and settings.PROVISIONING_BACKEND == "sandbox"
            ):
                env["SANDBOX_COMPUTE_URL"] = self.start_sandbox(env)
            manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
            self.spawn("web", [*manage, "runserver", f"{host}:{port}", "--noreload"], env)
            if env.get("RQ_INPROCESS", "").lower() not in ("1", "true", "yes", "on"):
                self.spawn(
                    "worker",
                    [*manage, "rqworker", "default", "provisioning", "--with-scheduler"],
                    env,
                )
                self.spawn("cron", [*manage, "rqcron", "portal.cron"], env)
            self.stdout.write(
                self.style.SUCCESS(f"Portal on http://{host}:{port}/  (Ctrl-C stops everything)")
            )
            while not stopping:
                for name, proc in self.children:
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping")
                        stopping = True
                time.sleep(0.3)
        finally:
            self.shutdown()

    def start_sandbox(self, env: dict[str, str]) -> str:
        """The sandbox Compute server, keeping its VMs in var/sandbox across restarts."""
        port = devservices.free_port()
        state = settings.VAR_DIR / "sandbox" / "compute-state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        self.spawn(
            "sandbox",
            [
                sys.executable,
                "-m",
                "provisioning.sandbox.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--state",
                str(state),
                "--quiet",
            ],
            env,
        )
        devservices.wait_for("127.0.0.1", port, "sandbox Compute server")
        url = f"http://127.0.0.1:{port}"
        self.stdout.write(f"Sandbox Compute server at {url} (state in {state})")
        return url

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, cwd=settings.BASE_DIR)
        self.children.append((name, proc))

    def shutdown(self) -> None:
        for _, proc in self.children:
            self._signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        for _, proc in self.children:
            # Whatever a child left in its group (a server's forks) goes too.
            self._signal_group(proc, signal.SIGKILL)
        if getattr(self, "private_redis", False):
            devservices.stop_private_redis()
        self.stdout.write("Stopped.")

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
