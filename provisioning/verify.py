"""What Compute says about an instance, and whether that is what the portal says.

The portal's `Instance.status` is a stored field: applied runs move it, and so does what is read
here. `observe` reads the instance's VMs, data disks and snapshots through the Compute API;
`outcome_shown` says whether that reading already shows what a request of some kind would leave
(the one way to mark a provisioning request done by hand); `status_from` says which status a
reading shows.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

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


def compute_client() -> Compute:
    """The Compute client of the configured backend."""
    if settings.PROVISIONING_BACKEND == "sandbox":
        if not settings.SANDBOX_COMPUTE_URL:
            raise ComputeUnavailable("SANDBOX_COMPUTE_URL is not set: no sandbox Compute server")
        return Compute(settings.SANDBOX_COMPUTE_URL, timeout=60, attempts=3)
    return Compute(None, timeout=60, attempts=3)


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
