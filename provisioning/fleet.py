"""Building instances that exist before any request (the demo fleet of `seed_demo`) through the
same provisioning path as everything else: a run per step, planned and applied by the job code
of provisioning/execute.py, here executed in this process instead of by a worker. So each demo
instance has its real infrastructure on the sandbox Compute server, Terraform state, and (when
suspended) the snapshot a resume restores.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from provisioning import instances, runs, terraform, workspace
from provisioning.execute import execute_run
from provisioning.models import Instance, InstanceStatus, Run, RunState


class FleetError(Exception):
    """A run of the fleet did not apply."""


def sandbox_state_path() -> Path:
    """Where the sandbox Compute server of `make run` keeps its VMs, disks and snapshots."""
    return Path(settings.VAR_DIR) / "sandbox" / "compute-state.json"


@contextmanager
def compute_available() -> Iterator[None]:
    """Make sure the configured backend can be reached: with the sandbox backend and no
    SANDBOX_COMPUTE_URL, start a sandbox server on `make run`'s state file for the duration."""
    if settings.PROVISIONING_BACKEND != "sandbox" or settings.SANDBOX_COMPUTE_URL:
        yield
        return
    from provisioning.sandbox.server import start_in_thread

    path = sandbox_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    url, server = start_in_thread(port=0, state_path=path)
    settings.SANDBOX_COMPUTE_URL = url
    try:
        yield
    finally:
        settings.SANDBOX_COMPUTE_URL = None
        server.stop()


def drive(run: Run) -> Run:
    """Plan and apply `run` in this process (a run the portal started itself, no request)."""
    execute_run(run.pk)
    run.refresh_from_db()
    if run.state != RunState.PLANNED:
        raise FleetError(
            f"run #{run.pk} ({run.kind} of {run.instance.slug}) did not plan: "
            f"{run.state} {run.error}"
        )
    runs.confirm(run, None, timezone.now(), queue_job=False)
    execute_run(run.pk)
    run.refresh_from_db()
    if run.state != RunState.APPLIED:
        raise FleetError(
            f"run #{run.pk} ({run.kind} of {run.instance.slug}) did not apply: "
            f"{run.state} {run.error}"
        )
    return run


def build(
    slug: str,
    customer: str,
    *,
    machine_type: str,
    version: str,
    executors: bool = False,
    suspended: bool = False,
    say: Callable[[str], None] = lambda text: None,
) -> tuple[Instance, bool]:
    """The instance `slug`, built for real if it is not yet: created by a run (and suspended by
    another, which snapshots its data disk). Returns (instance, built now)."""
    instance, _ = instances.get_or_create(
        slug,
        customer,
        InstanceStatus.PROVISIONING,
        machine_type=machine_type,
        version=version,
        executors_enabled=executors,
    )
    built = False
    if not instance.runs.filter(kind="create", state=RunState.APPLIED).exists():
        say(f"building {slug}: terraform plan and apply on the sandbox")
        instance = _step(instance, "create")
        built = True
    if suspended and instance.status == InstanceStatus.ACTIVE:
        say(f"suspending {slug}: snapshot, then scale to zero")
        instance = _step(instance, "suspend")
        built = True
    return instance, built


def forget_legacy_states(say: Callable[[str], None] = lambda text: None) -> int:
    """Bring the state of every live instance built by an older sandbox module (the demo
    fleet, and what demo requests created) up to the module: `seed_demo` does it on each
    `make run`."""
    cleaned = 0
    for instance in Instance.objects.live().order_by("slug"):
        if forget_legacy_state(instance):
            say(f"{instance.slug}: brought the state an older sandbox module wrote up to date")
            cleaned += 1
    return cleaned


def forget_legacy_state(instance: Instance) -> bool:
    """Bring the state of an instance built by an older sandbox module up to the module, so
    that its plans and verifications show no change: remove the local paths it kept
    (workspace.LEGACY_INPUTS), and record the identity of its disks and VMs when it has none
    (workspace.lacks_identity). In its own workspace, unless a run is busy with it (that run
    does the same: its init cleans, its plan adds the identity)."""
    variables = (instance.outputs or {}).get("variables")
    if not variables or runs.active_run(instance.pk) is not None:
        return False
    legacy, unkeyed = workspace.has_legacy_state(instance), workspace.lacks_identity(instance)
    if not (legacy or unkeyed):
        return False
    folder, env = workspace.render(instance, variables)
    terraform.run(["init", "-input=false", "-no-color", "-reconfigure"], folder, env)
    changed = legacy and workspace.forget_legacy_state(instance, folder, env)
    if unkeyed:
        workspace.record_identity(folder, env)
    return changed or unkeyed


def _step(instance: Instance, kind: str) -> Instance:
    busy = runs.active_run(instance.pk)
    if busy is not None:  # left by an interrupted seed: start over
        busy.discard(timezone.now())
    run = runs.start(instance, None, kind, None, {}, timezone.now(), queue_job=False)
    drive(run)
    instance.refresh_from_db()
    return instance
