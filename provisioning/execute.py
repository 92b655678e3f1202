"""Executing a run: one RQ job per phase of a run (plan, then apply after confirm). It
claims the run with a conditional update, beats a heartbeat while it works, and records every
step, the growing log and the outcome on the run row. Steps are safe to run twice."""

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from provisioning import errors, guards, outcomes, signals, terraform, verify, workspace
from provisioning.adoption import imports
from provisioning.compute import Compute
from provisioning.errors import KnownError
from provisioning.models import Instance, Run, RunState
from provisioning.runs import HEARTBEAT_INTERVAL

log = logging.getLogger(__name__)


class RunFailed(Exception):
    def __init__(self, message: str, output: str = "", known: KnownError | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.known = known


def execute_run(run_id: int) -> str:
    """Do whatever the run waits for (plan or apply). A duplicate job finds nothing to claim."""
    wanted = Run.objects.filter(pk=run_id).values_list("job_wanted", flat=True).first()
    if not wanted:
        return "nothing to do"
    run = Run.objects.select_related("instance").get(pk=run_id)
    if not run.claim(wanted, f"{socket.gethostname()}:{os.getpid()}", timezone.now()):
        return "claimed by another worker"
    beat = Heartbeat(run_id)
    beat.start()
    try:
        if wanted == "plan":
            Plan(run).execute()
        else:
            Apply(run).execute()
        return run.state
    except BaseException as exc:  # noqa: BLE001 - a timeout too must leave the run errored
        _fail(run_id, exc)
        if not isinstance(exc, RunFailed | terraform.TerraformError):
            raise
        return "errored"
    finally:
        beat.stop()


class Heartbeat(threading.Thread):
    """Touches the run every few seconds from its own connection; the reconciler ends runs
    whose heartbeat stops (the worker died)."""

    def __init__(self, run_id: int) -> None:
        super().__init__(daemon=True)
        self.run_id = run_id
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(HEARTBEAT_INTERVAL):
                Run.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def local_dirs() -> list[tuple[str, str]]:
    """(path, what the log says instead) of this machine's folders, the longest first: the
    workspaces' folder (inside the checkout under make run) and the checkout itself."""
    names: dict[str, str] = {}
    for folder, name in ((settings.VAR_DIR, "$PORTAL_VAR_DIR"), (settings.BASE_DIR, "$PORTAL_DIR")):
        for path in (str(Path(folder)), str(Path(folder).resolve())):
            if len(path) > 1:
                names.setdefault(path, name)
    return sorted(names.items(), key=lambda item: -len(item[0]))


class Phase:
    folder: Path
    env: dict[str, str]

    def __init__(self, run: Run) -> None:
        self.run = run
        self.instance: Instance = run.instance
        self._buffer: list[str] = []
        self._flushed = time.monotonic()
        self._local = local_dirs()

    # -- recording ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        for path, name in self._local:  # the log is on the request page: no local paths
            text = text.replace(path, name)
        self._buffer.append(text if text.endswith("\n") else text + "\n")
        if time.monotonic() - self._flushed > 1:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            chunk = "".join(self._buffer)
            self._buffer = []
            Run.objects.filter(pk=self.run.pk).update(log=Concat(F("log"), Value(chunk)))
        self._flushed = time.monotonic()

    def step(self, name: str, status: str) -> None:
        self.flush()
        run = Run.objects.get(pk=self.run.pk)
        now = timezone.now()
        for step in run.steps:
            if step["name"] == name:
                step["status"] = status
                if status == "running":
                    step["started_at"] = now.isoformat()
                else:
                    step["finished_at"] = now.isoformat()
        with transaction.atomic():
            Run.objects.filter(pk=run.pk).update(steps=run.steps)
            if status in ("done", "failed", "skipped"):
                signals.run_event.send(
                    Run,
                    run=run,
                    action="run_step",
                    at=now,
                    user=None,
                    comment=f"{outcomes.STEP_LABELS.get(name, name)}: {status}",
                )
        self.run.steps = run.steps

    def terraform(self, *args: str) -> tuple[str, int]:
        self.say(f"$ terraform {' '.join(args)}")
        try:
            return terraform.run(list(args), self.folder, self.env, on_output=self.say)
        except terraform.TerraformError as exc:
            raise RunFailed(
                errors.summary_line(exc.output) or str(exc), exc.output, errors.classify(exc.output)
            ) from None
        finally:
            self.flush()

    def adoption(self) -> imports.Adoption | None:
        """What this run imports, when it is the first run of an adopted instance."""
        return imports.for_run(
            self.instance, self.run.params, self.run.destroy, settings.PROVISIONING_BACKEND
        )

    def prepare(self, adoption: imports.Adoption | None = None) -> None:
        self.step("render", "running")
        self.folder, self.env = workspace.render(
            self.instance,
            self.run.params,
            imports=imports.blocks(adoption.planned) if adoption else "",
        )
        self.say(f"workspace {self.folder}")
        self.step("render", "done")
        self.step("init", "running")
        self.terraform("init", "-input=false", "-no-color", "-reconfigure")
        if workspace.forget_legacy_state(self.instance, self.folder, self.env):
            self.say("state: removed how an older sandbox module reached its CLI (local paths)")
        self.step("init", "done")

    def compute(self) -> Compute:
        if settings.PROVISIONING_BACKEND == "sandbox":
            if not settings.SANDBOX_COMPUTE_URL:
                raise RunFailed("SANDBOX_COMPUTE_URL is not set: no sandbox Compute server")
            return Compute(settings.SANDBOX_COMPUTE_URL)
        return Compute(None)


class Plan(Phase):
    def execute(self) -> None:
        adoption = self.adoption()
        if adoption is not None:
            self.check_adopted()
        self.prepare(adoption)
        if adoption is not None:
            self.say(
                f"adoption: {len(adoption.planned)} existing resource(s) imported by this plan"
                + (
                    f", {len(adoption.first)} imported first (the run removes them)"
                    if adoption.first
                    else ""
                )
            )
            self.import_first(adoption)
        self.step("plan", "running")
        args = ["plan", "-input=false", "-no-color", "-out=tfplan"]
        if self.run.destroy:
            args.append("-destroy")
        self.terraform(*args)
        text, _ = terraform.run(["show", "-no-color", "tfplan"], self.folder, self.env)
        shown, _ = terraform.run(["show", "-json", "tfplan"], self.folder, self.env)
        plan = json.loads(shown)
        summary = guards.summary(self.run.kind, plan)
        if summary["violations"]:
            # Kept for the page (not a state change): which resource broke which rule.
            Run.objects.filter(pk=self.run.pk).update(
                plan_text=text, plan_summary=summary, plan_json=plan
            )
            self.step("plan", "failed")
            raise RunFailed(
                "The plan breaks the plan guards, so nobody may confirm it:\n"
                + "\n".join(summary["violations"]),
                known=errors.PLAN_GUARD,
            )
        binary = (self.folder / "tfplan").read_bytes()
        self.step("plan", "done")
        now = timezone.now()
        imported = f"{summary['import']} to import, " if summary.get("import") else ""
        with transaction.atomic():
            digest = workspace.digest(self.run.params, workspace.module_dir())
            if not self.run.mark_planned(binary, text, summary, digest, plan):
                return
            signals.run_event.send(
                Run,
                run=self.run,
                action="run_planned",
                at=now,
                user=None,
                comment=f"Plan: {imported}{summary['add']} to add, {summary['change']} to "
                f"change, {summary['destroy']} to destroy. Waiting for confirm.",
            )

    def check_adopted(self) -> None:
        """An adopted instance's first run imports what the old folder says exists: Compute must
        show its VMs and data disks, or the run stops before Terraform creates them anew."""
        adopted = self.instance.outputs["variables"]
        try:
            reading = verify.observe_instance(self.instance, self.compute())
        except verify.ComputeUnavailable as exc:
            raise RunFailed(str(exc)) from None
        missing = imports.missing_in_compute(adopted, reading.vms, reading.disks)
        if missing:
            raise RunFailed(
                f"{self.instance.slug} was adopted from {self.instance.adopted_from or 'a folder'}"
                f", which describes what Compute does not show in {self.instance.gcp_project} "
                f"({self.instance.zone}): {', '.join(missing)}. Nothing was imported; correct "
                "the folder and import it again (or the infrastructure), then retry."
            )

    def import_first(self, adoption: imports.Adoption) -> None:
        """`terraform import` of what the run removes, which an import block cannot bring in:
        with the adopted settings rendered (so the configuration has them), into the state
        only. Addresses already in the state (an earlier attempt) are left alone."""
        if not adoption.first:
            return
        try:
            listed, _ = terraform.run(["state", "list"], self.folder, self.env)
        except terraform.TerraformError as exc:
            if "No state file was found" not in exc.output:
                raise
            listed = ""  # nothing of it in the state yet
        present = set(listed.split())
        todo = {address: id_ for address, id_ in adoption.first.items() if address not in present}
        if todo:
            workspace.render(self.instance, self.instance.outputs["variables"])
            for address, id_ in todo.items():
                self.terraform("import", "-input=false", "-no-color", address, id_)
            workspace.render(
                self.instance, self.run.params, imports=imports.blocks(adoption.planned)
            )


class Apply(Phase):
    snapshot_name: str

    def execute(self) -> None:
        self.refuse_if_stale()
        self.prepare(self.adoption())
        plan = self.run.plan_binary
        assert plan is not None  # refuse_if_stale refused a run without a saved plan
        (self.folder / "tfplan").write_bytes(bytes(plan))
        if self.run.kind in ("suspend", "upgrade"):
            self.snapshot()
        self.apply()
        self.verify()
        if self.run.kind == "teardown":
            self.cleanup()
        self.record()

    def refuse_if_stale(self) -> None:
        """Confirm applies exactly the saved plan, or nothing: the module or the instance must
        not have changed since (Terraform itself refuses a plan whose state moved on)."""
        expected = workspace.digest(self.run.params, workspace.module_dir())
        if not self.run.plan_binary or expected != self.run.inputs_digest:
            raise RunFailed(
                "The plan is stale: the module or the variables changed after it was made.",
                known=errors.classify("Saved plan is stale"),
            )

    def current_color(self) -> str:
        variables = self.instance.outputs.get("variables") or {}
        deployments = variables.get("deployments") or [self.instance.outputs.get("color", "blue")]
        return deployments[0]

    def snapshot(self) -> None:
        self.step("snapshot", "running")
        color = self.current_color()
        if self.run.kind == "upgrade":
            new = self.run.params["deployments"][0]
            name = workspace.upgrade_snapshot(self.instance, new, self.run.pk)
        else:
            name = f"{self.instance.slug}-{color}-s{self.run.pk}"
        disk = f"{self.instance.slug}-{color}-data"
        self.say(f"snapshot {disk} -> {name}")
        compute = self.compute()
        if compute.get_snapshot(self.instance.gcp_project, name) is None:
            compute.create_snapshot(
                self.instance.gcp_project,
                self.instance.zone,
                disk,
                name,
                labels={"managed-instance": self.instance.slug},
            )
        self.snapshot_name = name
        self.step("snapshot", "done")

    def apply(self) -> None:
        self.step("apply", "running")
        args = ["apply", "-input=false", "-no-color", "tfplan"]
        attempt = 0
        while True:
            try:
                self.terraform(*args)
                break
            except RunFailed as failure:
                known = failure.known
                if known is None or attempt >= known.retries:
                    self.step("apply", "failed")
                    raise
                delay = known.backoff * (2**attempt) * settings.PROVISIONING_BACKOFF_SCALE
                attempt += 1
                self.say(f"{known.code}: retry {attempt} of {known.retries} in {delay:.0f} s")
                time.sleep(delay)
                # The saved plan was partly applied: converge with the same variables.
                args = ["apply", "-input=false", "-no-color", "-auto-approve"]
                if self.run.destroy:
                    args.append("-destroy")
        self.step("apply", "done")

    def verify(self) -> None:
        self.step("verify", "running")
        compute = self.compute()
        project, zone = self.instance.gcp_project, self.instance.zone
        deployments = [] if self.run.destroy else self.run.params.get("deployments", [])
        for color in deployments:
            name = f"{self.instance.slug}-{color}"
            status = compute.wait_for_status(project, zone, name, ("RUNNING",), timeout=600)
            self.say(f"Compute API: {name} is {status}")
        for color in workspace.COLORS:
            if color in deployments:
                continue
            name = f"{self.instance.slug}-{color}"
            status = compute.get_instance_status(project, zone, name)
            if status is not None:
                raise RunFailed(f"{name} should be gone but the Compute API reports {status}")
        self.step("verify", "done")

    def cleanup(self) -> None:
        self.step("cleanup", "running")
        compute = self.compute()
        for snapshot in compute.list_snapshots(self.instance.gcp_project, self.instance.slug):
            self.say(f"delete snapshot {snapshot.name}")
            compute.delete_snapshot(self.instance.gcp_project, snapshot.name)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "DROP SCHEMA IF EXISTS "
                    f"{connection.ops.quote_name(workspace.state_schema(self.instance))} CASCADE"
                )
        self.step("cleanup", "done")

    def record(self) -> None:
        self.step("record", "running")
        outputs = {}
        if not self.run.destroy:
            raw, _ = terraform.run(["output", "-json"], self.folder, self.env)
            outputs = {name: item.get("value") for name, item in json.loads(raw or "{}").items()}
        now = timezone.now()
        with transaction.atomic():
            # Conditional: a run the reconciler already ended (its worker was taken for dead)
            # stays ended; a straggler must not bring it back or touch the instance.
            if not self.run.mark_applied(outputs, now):
                raise RunFailed(
                    "The run was ended while it applied (its worker was taken "
                    "for dead); retry it to converge."
                )
            instance = type(self.instance).objects.select_for_update().get(pk=self.instance.pk)
            if getattr(self, "snapshot_name", None) and self.run.kind == "suspend":
                instance.outputs = {**instance.outputs, "snapshot": self.snapshot_name}
            outcomes.apply_outcome(instance, self.run.kind, self.run.params, outputs)
            self.step("record", "done")
            signals.run_applied.send(Run, run=self.run, at=now)


def _fail(run_id: int, exc: BaseException) -> None:
    close_old_connections()
    run = Run.objects.get(pk=run_id)
    if run.state in (RunState.APPLIED, RunState.ERRORED, RunState.DISCARDED):
        return
    output = getattr(exc, "output", "")
    known = getattr(exc, "known", None) or errors.classify(output)
    message = str(exc) or exc.__class__.__name__
    if exc.__class__.__name__ == "JobTimeoutException":
        message = (
            f"The run took longer than PROVISIONING_JOB_TIMEOUT "
            f"({settings.PROVISIONING_JOB_TIMEOUT} s); Terraform was stopped."
        )
    now = timezone.now()
    steps = [
        {**s, "status": "failed", "finished_at": now.isoformat()} if s["status"] == "running" else s
        for s in run.steps
    ]
    with transaction.atomic():
        if run.mark_errored(
            run.state,
            now,
            message[:4000],
            known.code if known else "",
            known.workaround if known else "",
            steps,
        ):
            outcomes.after_error(run)
            signals.run_event.send(
                Run, run=run, action="run_errored", comment=message, at=now, user=None
            )
