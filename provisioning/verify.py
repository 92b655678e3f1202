"""What Compute says about an instance, and whether that is what the portal says.

The portal's `Instance.status` is a stored field: applied runs move it, and so does what is read
here. `observe` reads the instance's VMs, data disks and snapshots through the Compute API;
`outcome_shown` says whether that reading already shows what a request of some kind would leave
(the one way to mark a provisioning request done by hand); `status_from` says which status a
reading shows.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.compute import Compute, ComputeError
from provisioning.models import Instance, InstanceStatus

VERSION_KEY = "instance-version"  # the VM metadata item holding the product version


class ComputeUnavailable(Exception):
    """Compute could not be read (no sandbox server configured, API errors, ...)."""


@dataclass(frozen=True)
class Observation:
    """One instance as the Compute API showed it at one moment."""

    project: str
    zone: str
    vms: dict[str, str] = field(default_factory=dict)  # name -> RUNNING, TERMINATED, ...
    versions: dict[str, str] = field(default_factory=dict)  # VM name -> product version
    disks: list[str] = field(default_factory=list)  # data disks
    snapshots: list[str] = field(default_factory=list)  # oldest first

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def running(self) -> list[str]:
        return [name for name, status in self.vms.items() if status == "RUNNING"]

    def describe(self) -> str:
        vms = ", ".join(f"{name} {status}" for name, status in self.vms.items()) or "none"
        return (
            f"Compute shows, in {self.project} ({self.zone}): VMs: {vms}; data disks: "
            f"{', '.join(self.disks) or 'none'}; snapshots: {', '.join(self.snapshots) or 'none'}."
        )


def compute_client(timeout: float = 60, attempts: int = 3) -> Compute:
    """The Compute client of the configured backend (a page asks with a shorter timeout)."""
    if settings.PROVISIONING_BACKEND == "sandbox":
        if not settings.SANDBOX_COMPUTE_URL:
            raise ComputeUnavailable("SANDBOX_COMPUTE_URL is not set: no sandbox Compute server")
        return Compute(settings.SANDBOX_COMPUTE_URL, timeout=timeout, attempts=attempts)
    return Compute(None, timeout=timeout, attempts=attempts)


def observe(slug: str, project: str, zone: str, compute: Compute | None = None) -> Observation:
    """Read the instance `slug`'s VMs, data disks and snapshots (names start with the slug)."""
    try:
        compute = compute or compute_client()
        vms = compute.list_vms(project, zone, f"{slug}-")
        disks = compute.list_disks(project, zone, f"{slug}-")
        snapshots = compute.list_snapshots(project, f"{slug}-")
    except ComputeUnavailable:
        raise
    except (ComputeError, Exception) as exc:  # noqa: BLE001 - any API failure: unreadable
        raise ComputeUnavailable(f"Compute could not be read: {exc}") from exc
    return Observation(
        project=project,
        zone=zone,
        vms={vm.name: vm.status for vm in vms},
        versions={
            vm.name: item.value
            for vm in vms
            for item in vm.metadata.items
            if item.key == VERSION_KEY
        },
        # Boot disks come and go with their VM; the data disks hold the customer's data.
        disks=[d.name for d in disks if d.name.endswith("-data")],
        snapshots=[s.name for s in snapshots],
    )


def observe_instance(instance: Instance, compute: Compute | None = None) -> Observation:
    return observe(instance.slug, instance.gcp_project, instance.zone, compute)


def outcome_shown(kind: str, observation: Observation, target_version: str = "") -> bool:
    """Whether Compute already shows what a finished request of `kind` leaves behind."""
    if kind in ("create", "resume"):
        return bool(observation.running())
    if kind == "suspend":
        return not observation.vms and not observation.disks and bool(observation.snapshots)
    if kind == "teardown":
        return not observation.vms and not observation.disks and not observation.snapshots
    if kind == "upgrade":
        return any(observation.versions.get(vm) == target_version for vm in observation.running())
    # enable_executors and anything else: nothing Compute shows proves it.
    return False


def status_from(observation: Observation) -> str | None:
    """The instance status a reading shows, or None when it shows none cleanly (a VM stopped,
    a disk without a VM, ...)."""
    if observation.running() and observation.disks:
        return InstanceStatus.ACTIVE
    if not observation.vms and not observation.disks:
        return InstanceStatus.SUSPENDED if observation.snapshots else InstanceStatus.TORN_DOWN
    return None


# -- verification: the record against Compute and against Terraform ------------------------------

VERIFIABLE = (InstanceStatus.ACTIVE, InstanceStatus.SUSPENDED, InstanceStatus.FAILED)


def compare(instance: Instance, reading: Observation) -> tuple[list[str], str]:
    """What in the reading disagrees with the record, and the status the reading shows for this
    instance (the record's when they agree). A reading that shows no clean status (a VM
    stopped, a data disk without a VM, nothing at all where an instance should be) makes the
    instance failed: it needs someone to look."""
    problems: list[str] = []
    shown = status_from(reading)
    status = instance.status
    if instance.status == InstanceStatus.ACTIVE:
        color = (instance.outputs or {}).get("color", "blue")
        name = f"{instance.slug}-{color}"
        if reading.vms.get(name) != "RUNNING":
            problems.append(f"{name} should be RUNNING; Compute shows {reading.vms.get(name)}.")
    if instance.status == InstanceStatus.SUSPENDED:
        snapshot = (instance.outputs or {}).get("snapshot")
        if snapshot and snapshot not in reading.snapshots:
            problems.append(f"The suspend snapshot {snapshot} is missing.")
    if shown != instance.status:
        if shown in (InstanceStatus.ACTIVE, InstanceStatus.SUSPENDED):
            status = shown
            problems.append(
                f"{reading.describe()} The record said {instance.status}; it is now {shown}."
            )
        else:
            status = InstanceStatus.FAILED
            problems.append(
                f"{reading.describe()} That is neither a working nor a suspended instance"
                + (
                    f": the record said {instance.status}; it is now failed."
                    if instance.status != InstanceStatus.FAILED
                    else "."
                )
            )
    return problems, status


def terraform_drift(instance: Instance) -> tuple[list[str], dict[str, Any]]:
    """`terraform plan` of the last applied variables, which should change nothing. Planned in a
    folder of its own, without taking the state lock (it writes nothing), so it never gets in
    the way of a run."""
    import json
    import shutil

    from provisioning import guards, terraform, workspace

    variables = (instance.outputs or {}).get("variables")
    if not variables or instance.awaits_import():
        # Nothing applied yet, or adopted and not imported: the portal's state holds nothing of
        # it, and its first run imports what exists (Compute is still compared).
        return [], {}
    folder = workspace.workspace_dir(instance).with_name(
        workspace.workspace_dir(instance).name + "-verify"
    )
    folder, env = workspace.render(instance, variables, folder)
    local_state = workspace.workspace_dir(instance) / "terraform.tfstate"
    if local_state.exists():  # SQLite: the runs keep a local state file
        shutil.copyfile(local_state, folder / "terraform.tfstate")
    terraform.run(["init", "-input=false", "-no-color", "-reconfigure"], folder, env)
    _, code = terraform.run(
        ["plan", "-input=false", "-no-color", "-lock=false", "-detailed-exitcode", "-out=verify"],
        folder,
        env,
    )
    if code != 2:
        return [], {}
    shown, _ = terraform.run(["show", "-json", "verify"], folder, env)
    summary = guards.summary("verify", json.loads(shown))
    changes = [c for c in guards.changes_of(json.loads(shown)) if c.actions != ("no-op",)]
    problem = (
        f"terraform plan of the last applied settings is not empty: {summary['add']} to add, "
        f"{summary['change']} to change, {summary['destroy']} to destroy ("
        + ", ".join(f"{c.address} {'/'.join(c.actions)}" for c in changes[:8])
        + ")."
    )
    return [problem], {k: summary[k] for k in ("add", "change", "destroy", "destroyed")}


def verify(instance_id: int, *, with_plan: bool = True, now: datetime | None = None) -> Instance:
    """Compare one instance with Compute (and with a `terraform plan` that should change
    nothing) and record the result: `drift` (None when all agrees), `verified_at`, and the
    status the reading shows when it differs. An instance a run is changing is left alone."""
    from provisioning import runs, signals, terraform
    from provisioning.errors import summary_line

    now = now or timezone.now()
    instance = Instance.objects.get(pk=instance_id)
    if instance.status not in VERIFIABLE or runs.active_run(instance.pk) is not None:
        return instance
    reading = observe_instance(instance)
    problems, status = compare(instance, reading)
    plan: dict[str, Any] = {}
    if with_plan and status == instance.status and status != InstanceStatus.FAILED:
        try:
            found, plan = terraform_drift(instance)
        except terraform.TerraformError as exc:
            found = [f"terraform plan could not run: {summary_line(exc.output) or exc}"]
        problems += found
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        if runs.active_run(locked.pk) is not None or locked.status != instance.status:
            return locked  # a run started or finished meanwhile: what it leaves wins
        previous = locked.drift
        # What was found, independent of how it is worded: DevOps hear once per new finding.
        finding = {"compute": reading.as_json(), "plan": plan}
        drift = {"found_at": now.isoformat(), "problems": problems, **finding} if problems else None
        locked.drift, locked.verified_at, locked.status = drift, now, status
        locked.save(update_fields=["drift", "verified_at", "status", "updated_at"])
        seen = {key: (previous or {}).get(key) for key in finding}
        if drift and (previous is None or seen != finding):
            signals.instance_drift.send(Instance, instance=locked, drift=drift, at=now)
    return locked


VERIFY_JOB = "provisioning.jobs.verify_instance"


def verify_job_id(instance_id: int) -> str:
    return f"verify-{instance_id}"


def enqueue_verification(instance_id: int) -> bool:
    """Queue a verification of one instance unless one is already waiting or running."""
    import django_rq

    from provisioning.runs import LIVE_JOB_STATUSES

    queue = django_rq.get_queue("provisioning")
    job = queue.fetch_job(verify_job_id(instance_id))
    if job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES:
        return False
    queue.enqueue(VERIFY_JOB, instance_id, job_id=verify_job_id(instance_id), job_timeout=900)
    return True


def verify_fleet() -> int:
    """Queue a verification of every live instance, one job each."""
    queued = 0
    for pk in Instance.objects.filter(status__in=VERIFIABLE).values_list("pk", flat=True):
        queued += enqueue_verification(pk)
    return queued
