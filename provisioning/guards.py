"""Plan guards: rules checked on every saved plan (`terraform show -json`) before anyone may
confirm it, so that no request kind can do by accident what only another kind may do.

- Only a create creates the project.
- Only a teardown destroys the project, its address or its snapshots.
- A data disk is destroyed (or replaced) only by a teardown, or by a suspend or an upgrade,
  whose apply snapshots the disk before Terraform touches it.
- What a plan imports (the first run of an adopted instance) it does not destroy or replace:
  that would mean the adopted settings do not describe what exists.

Resources are recognised by their type and name in both modules (the sandbox's
`terraform_data` stand-ins and the real Google resources).
"""

from dataclasses import dataclass
from typing import Any

PROJECT, ADDRESS, SNAPSHOT, DATA_DISK = "project", "address", "snapshot", "data disk"

# (resource type, resource name or None for any name) -> what it is
ROLES: dict[tuple[str, str | None], str] = {
    ("google_project", None): PROJECT,
    ("google_compute_global_address", None): ADDRESS,
    ("google_compute_snapshot", None): SNAPSHOT,
    ("google_compute_disk", "data"): DATA_DISK,
    ("terraform_data", "project"): PROJECT,
    ("terraform_data", "address"): ADDRESS,
    ("terraform_data", "data_disk"): DATA_DISK,
}
# The kinds whose apply takes a snapshot of the data disk before `terraform apply`.
SNAPSHOTTING_KINDS = ("suspend", "upgrade")


@dataclass(frozen=True)
class Change:
    address: str
    role: str | None
    actions: tuple[str, ...]
    importing: bool = False  # the plan imports it (the first run of an adopted instance)

    @property
    def creates(self) -> bool:
        return "create" in self.actions

    @property
    def deletes(self) -> bool:
        return "delete" in self.actions  # a replace is delete + create


def role_of(change: dict[str, Any]) -> str | None:
    kind, name = change.get("type", ""), change.get("name", "")
    return ROLES.get((kind, name)) or ROLES.get((kind, None))


def changes_of(plan: dict[str, Any]) -> list[Change]:
    return [
        Change(
            address=change.get("address", "?"),
            role=role_of(change),
            actions=tuple(change.get("change", {}).get("actions", [])),
            importing=bool(change.get("change", {}).get("importing")),
        )
        for change in plan.get("resource_changes", [])
    ]


def violations(kind: str, plan: dict[str, Any]) -> list[str]:
    """What in the plan breaks a rule for a run of `kind`, one line per resource and rule."""
    found: list[str] = []
    for change in changes_of(plan):
        if change.role == PROJECT and change.creates and kind != "create":
            found.append(f"{change.address}: only a create may create the project ({kind}).")
        if change.role in (PROJECT, ADDRESS, SNAPSHOT) and change.deletes and kind != "teardown":
            found.append(
                f"{change.address}: only a teardown may destroy the {change.role} ({kind})."
            )
        if change.importing and change.deletes:
            found.append(
                f"{change.address}: imported and destroyed by the same plan: what exists is not "
                "what the adopted settings describe."
            )
        if change.role == DATA_DISK and change.deletes:
            if kind not in ("teardown", *SNAPSHOTTING_KINDS):
                found.append(
                    f"{change.address}: a {kind} may not destroy a data disk; only a teardown, "
                    "or a suspend or upgrade that snapshots it first, may."
                )
    return found


def summary(kind: str, plan: dict[str, Any]) -> dict[str, Any]:
    """The counts a page shows, what the plan destroys, and whether data goes with it."""
    counts = {"import": 0, "add": 0, "change": 0, "destroy": 0}
    destroyed: list[str] = []
    replaced: list[str] = []
    data_destroyed = False
    for change in changes_of(plan):
        if change.importing:
            counts["import"] += 1
        if change.creates:
            counts["add"] += 1
        if change.deletes:
            counts["destroy"] += 1
            (replaced if change.creates else destroyed).append(change.address)
            data_destroyed = data_destroyed or change.role == DATA_DISK
        if change.actions == ("update",):
            counts["change"] += 1
    return {
        **counts,
        "destroyed": destroyed + replaced,
        "replaced": replaced,
        "data_destroyed": data_destroyed,
        "violations": violations(kind, plan),
    }
