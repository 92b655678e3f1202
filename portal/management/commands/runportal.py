"""`make run`: the web portal, an RQ worker with its scheduler, and what they need, in one command.

A supervisor of its children: the web (`runserver --noreload`), the RQ worker (with its
scheduler), `rqcron portal.cron`, the sandbox Compute server and, when REDIS_URL is unset, a
private Redis under var/redis (in the foreground, so it is a child like the others). With DEBUG
off (the default; `make run` gives it a key and plain HTTP, see portal/env.py) it first collects
the static files that WhiteNoise serves.

- A child that exits is started again: after 1 s, then 2, 4, 8, 16 and at most 30 s while it
  keeps exiting; a child that stayed up `STABLE_AFTER` seconds starts over at 1 s. Each exit is
  logged with the child's name and exit code (or signal).
- Redis is watched (pinged every second) while a child that needs it waits to be restarted, and
  once it has been seen down until it answers again. Meanwhile the worker and the scheduler are
  not started in a loop; they start the moment Redis answers, and those still running from
  before the outage are restarted then (the worker with SIGTERM, its warm shutdown: a job in
  progress finishes first) so that neither waits out rq's own reconnect delay (up to 60 s). A
  freshly started scheduler runs every periodic job at once, among them the relays that enqueue
  again what was committed while Redis was away.
- Only Ctrl-C, SIGTERM or SIGHUP stop everything. Each child runs in its own session, so the
  terminal's Ctrl-C reaches this supervisor only; it sends SIGTERM to every child's process
  group (Redis last, after the processes that use it), SIGKILL after `STOP_TIMEOUT` seconds, and
  then to every process still below it: nothing is left running. On Linux the supervisor is a
  "child subreaper", so what lives in groups and sessions of its own (RQ's work horse, the
  Terraform it runs) and outlived its parent is still found below it.
- What a child that exited left in its process group (the worker's scheduler) is killed before
  the child is started again; a work horse of a worker that died finishes its job.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal import devservices

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A child up this long had a good run: its next restart waits FIRST_BACKOFF again.
STABLE_AFTER = 60.0
POLL = 0.25
# How often Redis is pinged while it is watched.
REDIS_CHECK_EVERY = 1.0
STOP_TIMEOUT = 10.0
# How often orphans that were handed to this subreaper are reaped once they exit.
REAP_EVERY = 5.0
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Child:
    name: str
    cmd: list[str]
    # The worker and the scheduler: restarted as soon as Redis answers again after an outage.
    needs_redis: bool = False
    # A hint for the exit log line (where the child writes its own log).
    log_hint: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # Exits in a row without a good run; the next restart waits FIRST_BACKOFF * 2**failures.
    failures: int = 0
    restart_at: float | None = None

    def backoff(self, ran_for: float) -> float:
        if ran_for >= STABLE_AFTER:
            self.failures = 0
        delay = min(FIRST_BACKOFF * 2**self.failures, MAX_BACKOFF)
        self.failures += 1
        return delay


def become_subreaper() -> None:
    """Linux: processes below this one whose parent dies are handed to this one, not to init, so
    that shutdown can find them. Elsewhere nothing changes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def processes_below(root: int, depth: int | None = None) -> dict[int, str]:
    """The processes below `root` (children only with depth=1) and their states ("Z" for a
    zombie), read from /proc; empty where there is no /proc."""
    parents: dict[int, list[tuple[int, str]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append((int(entry), fields[0]))
    found: dict[int, str] = {}
    level, todo = 0, [root]
    while todo and (depth is None or level < depth):
        level += 1
        todo, current = [], todo
        for pid in current:
            for child, state in parents.get(pid, []):
                found[child] = state
                todo.append(child)
    return found


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


class Command(BaseCommand):
    help = (
        "Run the web portal, an RQ worker with its scheduler, and a private Redis if needed; "
        "restart whichever exits, until Ctrl-C or SIGTERM."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.children: list[Child] = []
        self.stopping = False
        self.redis_url = ""
        self.redis_seen_down = False
        self.redis_down_since = 0.0
        self.redis_checked_at = 0.0
        self.reaped_at = 0.0
        self.env = dict(os.environ)
        self.env.setdefault("PYTHONUNBUFFERED", "1")

        def stop(signum: int, frame: FrameType | None) -> None:
            if self.stopping:
                return
            self.stopping = True
            self.log(f"{signal.Signals(signum).name}: stopping everything")

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        become_subreaper()

        if devservices.answers(host, port, timeout=0.5):
            raise CommandError(f"{host}:{port} is already in use: choose another PORT")
        if not settings.DEBUG:
            # Without DEBUG, runserver serves no static files: WhiteNoise serves what
            # collectstatic gathers under STATIC_ROOT, with hashed names, as in production.
            call_command("collectstatic", interactive=False, verbosity=0)
        try:
            self.start_everything(host, port)
            if not self.stopping:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Portal on http://{host}:{port}/  (Ctrl-C stops everything)"
                    )
                )
            while not self.stopping:
                self.supervise()
                time.sleep(POLL)
        finally:
            self.shutdown()

    # -- starting ------------------------------------------------------------------------------

    def start_everything(self, host: str, port: int) -> None:
        env = self.env
        if env.get("REDIS_URL"):
            self.redis_url = env["REDIS_URL"]
        elif shutil.which("redis-server"):
            env["REDIS_URL"] = self.redis_url = self.start_private_redis()
        else:
            env["RQ_INPROCESS"] = "true"
            self.stdout.write(self.style.WARNING("redis-server not installed: jobs run in-process"))
        if not env.get("SANDBOX_COMPUTE_URL") and settings.PROVISIONING_BACKEND == "sandbox":
            env["SANDBOX_COMPUTE_URL"] = self.start_sandbox()
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        web = self.add(Child("web", [*manage, "runserver", f"{host}:{port}", "--noreload"]))
        if env.get("RQ_INPROCESS", "").lower() not in ("1", "true", "yes", "on"):
            worker = [*manage, "rqworker", "default", "provisioning", "--with-scheduler"]
            self.add(Child("worker", worker, needs_redis=True))
            self.add(Child("cron", [*manage, "rqcron", "portal.cron"], needs_redis=True))
        self.wait_until_up(web, host, port, seconds=60)

    def start_private_redis(self) -> str:
        """Redis under var/redis as a child in the foreground (`make services-stop` still finds it
        by its pid file), keeping its data across restarts like before."""
        port = devservices.PRIVATE_REDIS_PORT
        folder = devservices.VAR / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        if devservices.answers("127.0.0.1", port):
            self.stop_leftover_redis(folder / "redis.pid", port)
        server = shutil.which("redis-server") or "redis-server"
        cmd = [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--dir",
            str(folder),
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "60 1",
            "--appendonly",
            "no",
        ]
        hint = f"its log: {folder / 'redis.log'}"
        child = self.add(Child("redis", cmd, log_hint=hint))
        self.wait_until_up(child, "127.0.0.1", port)
        url = f"redis://127.0.0.1:{port}/0"
        self.stdout.write(f"Private Redis under {folder} at {url}")
        return url

    def stop_leftover_redis(self, pidfile: Path, port: int) -> None:
        """A Redis already on the private port is ours if var/redis/redis.pid names a live
        process (an earlier `make run` that was killed, or one from before Redis was a child):
        stop it so that this run starts its own. Anything else on the port is an error."""
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            raise CommandError(
                f"127.0.0.1:{port}, the port of the private Redis, is used by another program: "
                "stop it or set PORTAL_PRIVATE_REDIS_PORT to a free port"
            ) from None
        self.log(f"stopping the Redis left running by an earlier run (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while devservices.answers("127.0.0.1", port, timeout=0.2):
            if time.monotonic() > deadline:
                raise CommandError(f"the Redis left on port {port} (pid {pid}) does not stop")
            time.sleep(0.2)

    def start_sandbox(self) -> str:
        """The sandbox Compute server, keeping its VMs in var/sandbox across restarts (and its
        port: the other children have its URL)."""
        port = devservices.free_port()
        state = settings.VAR_DIR / "sandbox" / "compute-state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
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
        ]
        child = self.add(Child("sandbox", cmd))
        self.wait_until_up(child, "127.0.0.1", port)
        url = f"http://127.0.0.1:{port}"
        self.stdout.write(f"Sandbox Compute server at {url} (state in {state})")
        return url

    def wait_until_up(self, child: Child, host: str, port: int, seconds: float = 30) -> None:
        """At start a child that cannot come up stops the run: it is a setup problem to show,
        not something to retry forever."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            if devservices.answers(host, port, timeout=0.5):
                return
            if child.proc is not None and child.proc.poll() is not None:
                code = describe_exit(child.proc.returncode)
                raise CommandError(f"{child.name} exited with {code} at start. {child.log_hint}")
            if time.monotonic() > deadline:
                raise CommandError(f"{child.name} did not listen on {host}:{port} in {seconds}s")
            time.sleep(0.2)

    def add(self, child: Child) -> Child:
        self.children.append(child)
        if not self.stopping:
            self.spawn(child)
        return child

    def spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.cmd, env=self.env, start_new_session=True, cwd=settings.BASE_DIR
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    # -- supervising ---------------------------------------------------------------------------

    def supervise(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            # What it left in its group (the worker's scheduler) goes with it.
            self._signal_group(child.proc, signal.SIGKILL)
            ran_for = now - child.started_at
            delay = child.backoff(ran_for)
            child.proc = None
            child.restart_at = now + delay
            hint = f" ({child.log_hint})" if child.log_hint else ""
            when = (
                "when Redis answers"
                if child.needs_redis and self.redis_seen_down
                else f"in {delay:.0f}s"
            )
            self.log(
                f"{child.name} exited with {describe_exit(code)} after {ran_for:.0f}s; "
                f"restarting {when}{hint}",
                error=True,
            )
            if child.name == "redis":
                self.redis_went_down(now)
        if self.redis_came_back(now):
            self.after_redis_outage()
        for child in self.children:
            if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                if child.needs_redis and self.redis_seen_down:
                    continue  # started the moment Redis answers again
                self.spawn(child)
                count = f" (attempt {child.failures})" if child.failures > 1 else ""
                self.log(f"{child.name} restarted{count}")
        if now - self.reaped_at >= REAP_EVERY:
            self.reaped_at = now
            self.reap_orphans()

    def reap_orphans(self) -> None:
        """Orphans handed to this subreaper (a work horse whose worker died) become zombies when
        they exit, until waited for."""
        ours = {c.proc.pid for c in self.children if c.proc is not None}
        for pid, state in processes_below(os.getpid(), depth=1).items():
            if pid not in ours and state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def redis_came_back(self, now: float) -> bool:
        """Whether Redis answers again after being seen down. It is checked while a child that
        needs it waits for a restart, and every second once it has been seen down."""
        if not self.redis_url:
            return False
        waiting = any(c.needs_redis and c.proc is None for c in self.children)
        if not (waiting or self.redis_seen_down) or now - self.redis_checked_at < REDIS_CHECK_EVERY:
            return False
        self.redis_checked_at = now
        if not self.redis_answers():
            self.redis_went_down(now)
            return False
        if self.redis_seen_down:
            self.redis_seen_down = False
            return True
        return False

    def redis_went_down(self, now: float) -> None:
        if self.redis_seen_down:
            return
        self.redis_seen_down = True
        self.redis_down_since = now
        self.log(
            "Redis is down: the web keeps serving and work waits in the database; the worker "
            "and the scheduler start again when it answers",
            error=True,
        )

    def redis_answers(self) -> bool:
        client = redis.Redis.from_url(
            self.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def after_redis_outage(self) -> None:
        self.log("Redis answers again: starting the worker and the scheduler now")
        for child in self.children:
            if not child.needs_redis:
                continue
            child.failures = 0
            if child.proc is None:
                child.restart_at = time.monotonic()
            elif child.started_at < self.redis_down_since:
                # A warm stop: the worker finishes a job in progress; its exit is then seen by
                # supervise(), which starts it again after FIRST_BACKOFF.
                child.proc.send_signal(signal.SIGTERM)

    def log(self, message: str, error: bool = False) -> None:
        line = f"{time.strftime('%H:%M:%S')} runportal: {message}"
        (self.stderr if error else self.stdout).write(line)

    # -- stopping ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        # Redis last: a worker stopping warmly still talks to it.
        first = [c for c in self.children if c.name != "redis"]
        last = [c for c in self.children if c.name == "redis"]
        for group in (first, last):
            self._stop(group)
        # What lives in groups of its own (a work horse, its Terraform): found below us because
        # this process is their subreaper, or because their parent is still running.
        for _ in range(3):
            left = [pid for pid, state in processes_below(os.getpid()).items() if state != "Z"]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        self.reap_orphans()
        self.stdout.write("Stopped.")

    def _stop(self, children: list[Child]) -> None:
        running = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            self._signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        for proc in running:
            # Whatever a child left in its group (a server's forks) goes too.
            self._signal_group(proc, signal.SIGKILL)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
