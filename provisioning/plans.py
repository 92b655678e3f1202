"""A saved plan (`terraform show -json`, Run.plan_json) as people read it: one row per resource
that changes, with its action (add, change, replace, destroy) and, where it helps, the attributes
that change. No-ops and data reads are left out. Sensitive values are never shown."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Terraform's action lists -> the word a page shows.
ACTIONS: dict[tuple[str, ...], str] = {
    ("create",): "add",
    ("update",): "change",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("delete",): "destroy",
}
LEFT_OUT = {("no-op",), ("read",), ()}
ORDER = ("destroy", "replace", "change", "add", "import")  # the most dangerous first
# Why Terraform replaces or destroys (resource_changes[].action_reason), in words.
REASONS = {
    "replace_because_tainted": "tainted by a failed apply",
    "replace_because_cannot_update": "a change that cannot be made in place",
    "replace_by_request": "replacement requested",
    "replace_by_triggers": "its replace triggers changed",
    "delete_because_no_resource_config": "no longer in the configuration",
    "delete_because_no_module": "its module is gone",
    "delete_because_wrong_repetition": "count or for_each changed",
    "delete_because_count_index": "beyond the new count",
    "delete_because_each_key": "its key left for_each",
    "delete_because_no_move_target": "moved to an address that does not exist",
}
# Attributes that change on every replace or say nothing a person can use.
SKIPPED = {"id"}
MAX_ATTRIBUTES = 12
MAX_VALUE = 120
UNKNOWN = "(known after apply)"
SENSITIVE = "(sensitive)"
ABSENT = "—"


class _Missing:
    """An attribute absent on one side (not the same as null)."""


MISSING = _Missing()


@dataclass(frozen=True)
class AttributeChange:
    path: str  # input.network_endpoint_group, triggers_replace[3]
    before: str
    after: str
    forces_replacement: bool = False


@dataclass(frozen=True)
class ResourceRow:
    address: str
    type: str
    action: str  # add, change, replace, destroy, import (or Terraform's words for anything else)
    reason: str = ""
    attributes: list[AttributeChange] = field(default_factory=list)
    more: int = 0  # attributes that change beyond those listed

    @property
    def module(self) -> str:
        """The module part of the address (module.instance.), shown apart."""
        prefix = self.address.removesuffix(self.local_address)
        return prefix

    @property
    def local_address(self) -> str:
        """The address inside its module: terraform_data.vm["blue"]."""
        start = self.address.find(f"{self.type}.")
        return self.address[start:] if start >= 0 else self.address


@dataclass(frozen=True)
class PlanTable:
    rows: list[ResourceRow]
    counts: dict[str, int]  # action -> rows

    def __bool__(self) -> bool:
        return bool(self.rows)


def action_of(actions: list[str] | tuple[str, ...]) -> str | None:
    """The page's word for Terraform's `actions`; None for what the table leaves out."""
    key = tuple(actions)
    if key in LEFT_OUT:
        return None
    return ACTIONS.get(key, "/".join(key))


def build(plan: dict[str, Any] | None) -> PlanTable:
    """The table of a plan: destroys first, then replaces, changes and adds, each by address."""
    rows = []
    for change in (plan or {}).get("resource_changes") or []:
        if change.get("mode", "managed") != "managed":
            continue
        body = change.get("change") or {}
        action = action_of(body.get("actions") or [])
        importing = body.get("importing") or {}
        if action is None and importing:
            action = "import"  # brought into the state as it is (an adopted instance)
        if action is None:
            continue
        reason = REASONS.get(change.get("action_reason", ""), "")
        if importing:
            reason = f"imported from {importing.get('id', '?')}" + (f"; {reason}" if reason else "")
        attributes: list[AttributeChange] = []
        if action in ("change", "replace"):
            attributes = attribute_changes(body, replace=action == "replace")
        rows.append(
            ResourceRow(
                address=change.get("address", "?"),
                type=change.get("type", ""),
                action=action,
                reason=reason,
                attributes=attributes[:MAX_ATTRIBUTES],
                more=max(0, len(attributes) - MAX_ATTRIBUTES),
            )
        )
    rank = {action: place for place, action in enumerate(ORDER)}
    rows.sort(key=lambda row: (rank.get(row.action, len(ORDER)), row.address))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.action] = counts.get(row.action, 0) + 1
    return PlanTable(rows, counts)


def attribute_changes(change: dict[str, Any], *, replace: bool = False) -> list[AttributeChange]:
    """The leaves of a resource's attributes that differ between `before` and `after`. A
    replace lists what forces it and what else is known to change; values computed anew
    (known after apply) are listed for in-place changes only, where they tell what moves.
    A whole object that becomes unknown (terraform_data's `output`, which mirrors `input`) is
    left out."""
    replace_paths = [tuple(path) for path in change.get("replace_paths") or []]
    found = []
    for path, before, after, unknown in _leaves(
        change.get("before"), change.get("after"), change.get("after_unknown"), ()
    ):
        if not path or path[0] in SKIPPED:
            continue
        forces = any(path[: len(p)] == p for p in replace_paths)
        if unknown and isinstance(before, dict | list) and not forces:
            continue
        if unknown and replace and not forces:
            continue
        sensitive_before = _sensitive(change.get("before_sensitive"), path)
        sensitive_after = _sensitive(change.get("after_sensitive"), path)
        found.append(
            AttributeChange(
                path=_path_text(path),
                before=SENSITIVE if sensitive_before else _value_text(before),
                after=UNKNOWN if unknown else SENSITIVE if sensitive_after else _value_text(after),
                forces_replacement=forces,
            )
        )
    return found


def _leaves(
    before: Any, after: Any, unknown: Any, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], Any, Any, bool]]:
    """(path, before, after, after unknown) of every leaf that differs."""
    if unknown is True:
        yield path, before, MISSING, True
        return
    kinds = {type(v) for v in (before, after) if v is not None and not isinstance(v, _Missing)}
    kinds |= {type(unknown)} & {dict, list}
    if kinds == {dict}:
        b = before if isinstance(before, dict) else {}
        a = after if isinstance(after, dict) else {}
        u = unknown if isinstance(unknown, dict) else {}
        for key in sorted({*b, *a, *u}):
            yield from _leaves(b.get(key, MISSING), a.get(key, MISSING), u.get(key), (*path, key))
    elif kinds == {list}:
        bl = before if isinstance(before, list) else []
        al = after if isinstance(after, list) else []
        ul = unknown if isinstance(unknown, list) else []
        for index in range(max(len(bl), len(al), len(ul))):
            yield from _leaves(
                bl[index] if index < len(bl) else MISSING,
                al[index] if index < len(al) else MISSING,
                ul[index] if index < len(ul) else None,
                (*path, index),
            )
    elif kinds and before != after:
        yield path, before, after, False


def _sensitive(marks: Any, path: tuple[Any, ...]) -> bool:
    """Whether `path` is sensitive in a before_sensitive / after_sensitive structure (true at
    the path or at any of its parents)."""
    for key in path:
        if marks is True:
            return True
        if isinstance(marks, dict):
            marks = marks.get(key)
        elif isinstance(marks, list) and isinstance(key, int) and key < len(marks):
            marks = marks[key]
        else:
            return False
    return marks is True


def _path_text(path: tuple[Any, ...]) -> str:
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif key.replace("_", "").replace("-", "").isalnum():
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key)}]"
    return text


def _value_text(value: Any) -> str:
    if isinstance(value, _Missing):
        return ABSENT
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def outputs_shown(outputs: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    """The Terraform outputs of an applied run as (name, text, is a link), empty values left out
    (a suspended instance has no VM name)."""
    shown = []
    for name, value in sorted((outputs or {}).items()):
        if value in ("", None, {}, []):
            continue
        if isinstance(value, str):
            shown.append((name, value, value.startswith("https://")))
        elif isinstance(value, dict):
            text = ", ".join(f"{key}: {item}" for key, item in sorted(value.items()))
            shown.append((name, text, False))
        else:
            shown.append((name, _value_text(value), False))
    return shown
