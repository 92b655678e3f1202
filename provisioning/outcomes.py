"""What runs mean for instances: the steps of each kind, and the instance after a run (or after
a request done by hand, which the workflow applies through the same function)."""

from typing import Any

from provisioning import workspace
from provisioning.models import Instance, InstanceStatus, Run

STEP_LABELS = {
    "render": "Write the workspace",
    "init": "terraform init",
    "plan": "terraform plan",
    "snapshot": "Snapshot the data disk",
    "apply": "terraform apply",
    "verify": "Check the VM through the Compute API",
    "cleanup": "Delete the snapshots",
    "record": "Record the outputs",
}


def step_names(kind: str) -> list[str]:
    names = ["render", "init", "plan"]
    if kind in ("suspend", "upgrade"):
        names.append("snapshot")
    names += ["apply", "verify"]
    if kind == "teardown":
        names.append("cleanup")
    names.append("record")
    return names


def initial_steps(kind: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "label": STEP_LABELS[name],
            "status": "pending",
            "started_at": None,
            "finished_at": None,
        }
        for name in step_names(kind)
    ]


def apply_outcome(
    instance: Instance,
    kind: str,
    variables: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    """Set the instance as a finished request of `kind` leaves it. `variables` and `outputs`
    come from a run; a request done by hand passes `changes` (e.g. the new version)."""
    changes = changes or {}
    if kind == "create":
        instance.status = InstanceStatus.ACTIVE
    elif kind == "suspend":
        instance.status = InstanceStatus.SUSPENDED
    elif kind == "resume":
        instance.status = InstanceStatus.ACTIVE
    elif kind == "teardown":
        instance.status = InstanceStatus.TORN_DOWN
    elif kind == "upgrade":
        version = (variables or {}).get("instance_version") or changes.get("version")
        if version is not None:
            instance.version = version
    elif kind == "enable_executors":
        instance.executors_enabled = True
    if changes.get("snapshot"):
        instance.outputs = {**(instance.outputs or {}), "snapshot": changes["snapshot"]}
    if variables is not None:
        # An applied run makes the record what Terraform and Compute now hold.
        instance.drift = None
        recorded = dict(instance.outputs or {})
        recorded["variables"] = workspace.without_legacy(variables)
        if variables.get("deployments"):
            recorded["color"] = variables["deployments"][0]
        recorded["terraform"] = outputs or {}
        instance.outputs = recorded
        if outputs and outputs.get("url"):
            instance.url = outputs["url"]
    instance.save()


def after_error(run: Run) -> None:
    """A create that failed leaves a failed instance (a retry provisions it again)."""
    instance = run.instance
    if run.kind == "create" and instance.status == InstanceStatus.PROVISIONING:
        instance.status = InstanceStatus.FAILED
        instance.save(update_fields=["status", "updated_at"])


def after_discard(run: Run) -> None:
    """Nothing is applied by a discarded plan; a create's instance waits for the next plan."""
