"""Folders of the older Terraform set-up -> instances of the portal (`import_fleet`).

Each folder is read (`folder.read`), compared with the live instance of its slug, and then,
in a transaction of its own, created, updated or left alone:

- no live instance of that slug: created, `active` (`suspended` when it has no deployment),
  with `adopted_at` and `adopted_from`, and the module's variables as its Terraform settings;
- an adopted instance whose first run has not applied yet: updated to what the folder says;
- the same as the folder says, or taken over by the portal (a run of it has applied since: the
  portal's record is the truth from then on, and a difference is only noted): unchanged, so a
  second import changes nothing;
- otherwise skipped with the reason: an instance the portal made itself is changed through
  requests, not through an old folder, and one with an active run waits.
"""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, transaction

from provisioning import instances, runs
from provisioning.adoption import folder
from provisioning.models import Access, Instance, InstanceStatus

# Module variables that an instance field already shows (so a change is listed once).
AS_FIELDS = {
    "slug",
    "project_id",
    "zone",
    "machine_type",
    "instance_version",
    "public",
    "allowed_customer_ip_ranges",
    "enable_executors",
}


@dataclass
class Outcome:
    folder: str
    slug: str
    action: str  # create, update, unchanged, skipped
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name, old, new)
    reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    outcomes: list[Outcome]
    dry_run: bool

    def count(self, action: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    @property
    def skipped(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.action == "skipped"]

    @property
    def changed(self) -> bool:
        return any(outcome.action in ("create", "update") for outcome in self.outcomes)


class _Refused(Exception):
    pass


def folders(directory: Path) -> list[Path]:
    """The instance folders of `directory`: its subfolders, by name (hidden ones left out)."""
    return sorted(
        (p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def import_fleet(directory: Path, now: datetime, *, dry_run: bool = False) -> Result:
    """Adopt every folder of `directory`; with `dry_run`, say what would change and write
    nothing."""
    read: list[folder.Description | Outcome] = []
    for path in folders(directory):
        try:
            read.append(folder.read(path))
        except folder.FolderSkipped as exc:
            read.append(Outcome(path.name, exc.slug, "skipped", reason=str(exc)))
    by_slug: dict[str, list[str]] = {}
    for item in read:
        if isinstance(item, folder.Description):
            by_slug.setdefault(item.slug, []).append(item.folder)
    outcomes = []
    for item in read:
        if isinstance(item, Outcome):
            outcomes.append(item)
        elif len(by_slug[item.slug]) > 1:  # which of them is the instance? Nobody can say.
            others = ", ".join(name for name in by_slug[item.slug] if name != item.folder)
            reason = f"{others} describes {item.slug} too: keep one folder per instance"
            outcomes.append(Outcome(item.folder, item.slug, "skipped", reason=reason))
        else:
            outcomes.append(_adopt(item, now, dry_run))
    return Result(outcomes, dry_run)


def _adopt(description: folder.Description, now: datetime, dry_run: bool) -> Outcome:
    outcome = Outcome(description.folder, description.slug, "", notes=list(description.notes))
    try:
        if dry_run:
            _decide(description, outcome, lock=False)
        else:
            with transaction.atomic():  # the folder loads whole or not at all
                instance = _decide(description, outcome, lock=True)
                _write(description, instance, outcome, now)
    except _Refused as exc:
        outcome.action, outcome.reason, outcome.changes = "skipped", str(exc), []
    except (instances.InstanceInvalid, instances.InstanceExists) as exc:
        outcome.action, outcome.reason, outcome.changes = "skipped", str(exc), []
    except IntegrityError as exc:
        outcome.action, outcome.changes = "skipped", []
        outcome.reason = f"the database refused it: {str(exc).splitlines()[0]}"
    return outcome


def wanted(description: folder.Description) -> dict[str, Any]:
    """The instance fields the folder gives (outputs: the Terraform settings to start from)."""
    v = description.variables
    fields: dict[str, Any] = {
        "status": InstanceStatus.SUSPENDED if description.suspended else InstanceStatus.ACTIVE,
        "customer": description.customer,
        "gcp_project": v["project_id"],
        "zone": v["zone"],
        "machine_type": v["machine_type"],
        "version": description.version,
        "access": Access.PUBLIC_SSO if v["public"] else Access.IP_ALLOWLIST,
        "allowed_ip_ranges": list(v["allowed_customer_ip_ranges"]),
        "executors_enabled": v["enable_executors"],
        "url": f"https://{description.slug}.{v['domain']}",
    }
    if description.category and _has_field("category"):
        fields["category"] = description.category
    return fields


def _has_field(name: str) -> bool:
    try:
        Instance._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _outputs(description: folder.Description, current: dict[str, Any]) -> dict[str, Any]:
    outputs = {**current, "variables": description.variables}
    deployments = description.variables["deployments"]
    if deployments:
        outputs["color"] = deployments[0]
    else:
        outputs.pop("color", None)
    return outputs


def _decide(description: folder.Description, outcome: Outcome, *, lock: bool) -> Instance | None:
    """Set the outcome's action and changes; the live instance of the slug, if any."""
    query = Instance.objects.live().filter(slug=description.slug)
    instance = (query.select_for_update() if lock else query).first()
    fields = wanted(description)
    if instance is None:
        outcome.action = "create"
        outcome.changes = [(name, None, value) for name, value in fields.items()]
        return None
    changes = [
        (name, getattr(instance, name), value)
        for name, value in fields.items()
        if getattr(instance, name) != value
    ]
    before = (instance.outputs or {}).get("variables") or {}
    changes += [
        (f"terraform {name}", before.get(name), value)
        for name, value in description.variables.items()
        if name not in AS_FIELDS and before.get(name) != value
    ]
    if not changes:
        outcome.action = "unchanged"
        return instance
    if instance.adopted_at is None:
        raise _Refused(
            f"the portal already runs an instance {instance.slug} (not adopted), which differs: "
            "change it through a request, not through this folder"
        )
    first = instance.runs.filter(state="applied").order_by("finished_at", "id").first()
    if first is not None:
        # Taken over: the portal's runs hold the truth now and the folder is history.
        outcome.action = "unchanged"
        outcome.notes.append(
            f"the portal runs {instance.slug} since run #{first.pk} imported it, so this folder "
            f"is no longer read for it (it differs in {', '.join(c[0] for c in changes)})"
        )
        return instance
    busy = runs.active_run(instance.pk)
    if busy is not None:
        raise _Refused(f"run #{busy.pk} is {busy.state} on {instance.slug}: import it again later")
    outcome.action, outcome.changes = "update", changes
    return instance


def _write(
    description: folder.Description, instance: Instance | None, outcome: Outcome, now: datetime
) -> None:
    fields = wanted(description)
    if outcome.action == "create":
        instances.create(
            description.slug,
            fields.pop("customer"),
            fields.pop("status"),
            **fields,
            outputs=_outputs(description, {}),
            adopted_at=now,
            adopted_from=description.path,
        )
    elif outcome.action == "update" and instance is not None:
        instances.update(
            instance,
            validate=True,
            **fields,
            outputs=_outputs(description, instance.outputs or {}),
            adopted_from=description.path,
        )
