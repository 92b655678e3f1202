"""Loading requests filed before the portal existed (docs/api.md, "Importing history").

Each record is replayed through the workflow - `file_request` for its `submit`, `perform` and
`add_comment` for the rest, at the times the file gives - so roles, "never the requester" and the
state table judge history exactly as they judge live use. Field values are not held to today's
form validation: what a record leaves out takes the form's default. Nothing here notifies anyone
or starts a provisioning run.

A record is loaded whole or not at all (one transaction each). Records are replayed in the order
they were filed (their `submit` time), so what finished requests did to instances happens in the
order it happened.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import Min, Q
from django.utils import timezone

from provisioning import instances
from provisioning.models import Access, Category, Instance, InstanceStatus
from requests_app import validation, workflow
from requests_app.models import (
    FINAL_STATES,
    PROVISIONING_KINDS,
    AccessScope,
    Kind,
    NonStandardReason,
    Request,
)
from requests_app.transitions import RULES

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Actions that start or drive provisioning runs: history before the portal had none to replay.
RUN_ACTIONS = frozenset({"plan", "confirm", "discard", "retry"})
COMMENT = "comment"
SUBMIT = "submit"

BASE_FIELDS = (
    "external_id",
    "kind",
    "customer",
    "instance",
    "requested_by",
    "non_standard_reasons",
    "justification",
    "events",
    "category",  # any kind: an instance the import makes takes it
)
# The fields each kind keeps are the workflow's; a teardown's record may also carry `confirm`.
KIND_FIELDS = {**workflow.FIELDS_BY_KIND, Kind.TEARDOWN: ("confirm",)}
# The columns' sizes: not today's validation, just what the database can hold.
MAX_LENGTHS = {
    "external_id": 100,
    "customer": 200,
    "instance": 30,
    "machine_type": 40,
    "zone": 40,
    "target_version": 40,
    "person": 254,
}
DEFAULT_ZONE = "us-central1-f"


class ImportFileError(Exception):
    """The file as a whole cannot be read (not JSON, not a list)."""


class Rejected(Exception):
    """A record breaks a rule; `where` names the field or event."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class Outcome:
    status: str  # loaded / skipped / rejected
    label: str  # the external_id, or "record N" when the record has none
    message: str = ""
    request_id: int | None = None
    state: str = ""
    ignored: tuple[str, ...] = ()  # fields of the record that do not apply to its kind

    def line(self) -> str:
        if self.status == "loaded":
            line = f"loaded {self.label}: request #{self.request_id}, {self.state}"
            if self.ignored:
                line += f" (ignored fields that do not apply: {', '.join(self.ignored)})"
            return line
        if self.status == "skipped":
            return f"skipped {self.label}: already imported ({self.message})"
        return f"rejected {self.label}: {self.message}"


@dataclass
class ImportResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def loaded(self) -> int:
        return self.count("loaded")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    def summary(self) -> str:
        return (
            f"loaded {self.loaded}, skipped {self.skipped} already imported, "
            f"rejected {self.rejected}"
        )


# -- reading ------------------------------------------------------------------------------------


def read_file(path: str | os.PathLike[str]) -> list[Any]:
    """The list of records in `path`; ImportFileError when there is none to read."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ImportFileError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path} is not UTF-8 text: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    if not isinstance(data, list):
        raise ImportFileError(
            f"{path} must hold a JSON list of request records, not a JSON {_json_type(data)}."
        )
    return data


def _json_type(value: object) -> str:
    return {dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def parse_time(value: object, where: str) -> datetime:
    """An aware datetime from an ISO 8601 string; Rejected for anything else."""
    if not isinstance(value, str) or not value.strip():
        raise Rejected(where, f"give an ISO 8601 timestamp, not {value!r}.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejected(where, f"{value!r} is not an ISO 8601 timestamp.") from None
    if timezone.is_naive(parsed):
        # Typed without an offset: read in SLA_TIMEZONE, as the forms and the API read it.
        return timezone.make_aware(parsed, ZoneInfo(settings.SLA_TIMEZONE))
    return parsed


# -- importing ----------------------------------------------------------------------------------


def import_records(records: list[Any], *, now: datetime | None = None) -> ImportResult:
    """Replay `records` (a list from the file); one Outcome per record, in the order replayed."""
    now = now or timezone.now()
    result = ImportResult()
    importer = _Importer(now)
    seen: dict[str, int] = {}
    for position, record in sorted(enumerate(records), key=_replay_order):
        label = _label(record, position)
        external_id = _external_id(record)
        if external_id is not None:
            if external_id in seen:
                result.outcomes.append(
                    Outcome(
                        "rejected",
                        label,
                        f"external_id: {external_id!r} appears more than once in the file "
                        f"(also record {seen[external_id]}).",
                    )
                )
                continue
            seen[external_id] = position
        result.outcomes.append(importer.import_one(record, position, label))
    return result


def _external_id(record: object) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("external_id"), str | int):
        value = str(record["external_id"]).strip()
        return value or None
    return None


def _label(record: object, position: int) -> str:
    external_id = _external_id(record)
    return external_id if external_id is not None else f"record {position} (no external_id)"


def _replay_order(item: tuple[int, Any]) -> tuple[int, float, int]:
    """Records in the order they were filed; ones without a readable submit time first (they are
    rejected anyway), ties in file order."""
    position, record = item
    try:
        submitted = parse_time(record["events"][0]["at"], "")
    except (Rejected, KeyError, IndexError, TypeError):
        return (0, 0.0, position)
    return (1, submitted.timestamp(), position)


class _Importer:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.users: dict[str, User | None] = {}

    def import_one(self, record: Any, position: int, label: str) -> Outcome:
        external_id = _external_id(record)
        if external_id is not None:
            existing = Request.objects.filter(external_id=external_id).first()
            if existing is not None:
                return Outcome("skipped", label, f"request #{existing.pk}", existing.pk)
        try:
            with transaction.atomic():
                request = self.replay(record)
        except Rejected as exc:
            return Outcome("rejected", label, str(exc))
        except DatabaseError as exc:
            # A second import running at the same moment loaded it first.
            if external_id is not None:
                existing = Request.objects.filter(external_id=external_id).first()
                if existing is not None:
                    return Outcome("skipped", label, f"request #{existing.pk}", existing.pk)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Outcome("rejected", label, f"the database refused it: {first_line}")
        applies = set(BASE_FIELDS).union(KIND_FIELDS.get(record["kind"], ()))
        ignored = tuple(sorted(name for name in record if name not in applies))
        return Outcome("loaded", label, "", request.pk, request.state, ignored)

    # -- one record, inside its transaction

    def replay(self, record: Any) -> Request:
        if not isinstance(record, dict):
            raise Rejected("record", f"must be a JSON object, not a JSON {_json_type(record)}.")
        if _external_id(record) is None:
            raise Rejected("external_id", "every record needs a non-empty external_id.")
        kind = record.get("kind")
        if kind not in Kind.values:
            raise Rejected("kind", f"{kind!r} is not one of {', '.join(Kind.values)}.")
        events = record.get("events")
        if not isinstance(events, list) or not events:
            raise Rejected("events", "give the request's history: a list starting with submit.")
        self.check_lengths(record)

        submit = self.event(events, 0, None)
        if submit["action"] != SUBMIT:
            raise Rejected(submit["where"], "the first event must be submit.")
        requester_name = record.get("requested_by", submit["by_name"])
        if submit["by_name"] != requester_name:
            raise Rejected(
                submit["where"],
                f"submit must be by the requester {requester_name!r}, not {submit['by_name']!r}.",
            )
        cleaned = self.cleaned(record, kind, submit)
        try:
            request = workflow.file_request(
                submit["by"],
                kind,
                cleaned,
                now=submit["at"],
                notify=False,
                external_id=_external_id(record),
            )
        except workflow.WorkflowError as exc:
            raise Rejected(submit["where"], exc.message) from None

        previous = submit
        for index in range(1, len(events)):
            current = self.event(events, index, previous["at"])
            self.take(request, current)
            previous = current
        request.refresh_from_db()
        self.check_one_open_at_a_time(request, submit)
        return request

    def event(self, events: list[Any], index: int, not_before: datetime | None) -> dict[str, Any]:
        raw = events[index]
        where = f"events[{index}]"
        if not isinstance(raw, dict):
            raise Rejected(where, f"must be a JSON object, not a JSON {_json_type(raw)}.")
        action = raw.get("action")
        if not isinstance(action, str) or not action:
            raise Rejected(where, "has no action.")
        where = f"events[{index}] ({action})"
        at = parse_time(raw.get("at"), f"{where} at")
        if at > self.now:
            raise Rejected(where, f"{raw['at']} is in the future; history has happened.")
        if not_before is not None and at < not_before:
            raise Rejected(
                where, f"{raw['at']} is earlier than the event before it; give events in order."
            )
        by_name = raw.get("by")
        where = f"{where} by {by_name!r} at {at.isoformat()}"
        comment = raw.get("comment", "")
        if comment is None:
            comment = ""
        if not isinstance(comment, str):
            raise Rejected(where, "comment must be text.")
        due_at = raw.get("due_at")
        if due_at is not None:
            due_at = parse_time(due_at, f"{where} due_at")
        assignee = raw.get("assignee")
        if assignee is not None and not isinstance(assignee, str):
            raise Rejected(where, "assignee must be a username (or null for nobody).")
        return {
            "where": where,
            "action": action,
            "at": at,
            "by_name": by_name,
            "by": self.user(by_name, where),
            "comment": comment,
            "due_at": due_at,
            "assignee": assignee,
        }

    def user(self, username: object, where: str) -> "User":
        if not isinstance(username, str) or not username:
            raise Rejected(where, "name who took it in 'by'.")
        if username not in self.users:
            User = get_user_model()
            self.users[username] = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        user = self.users[username]
        if user is None:
            raise Rejected(where, f"unknown user {username!r}; create the account first.")
        if not user.is_active:
            raise Rejected(where, f"user {username!r} is inactive; no rule lets them act.")
        return user

    def take(self, request: Request, event: dict[str, Any]) -> None:
        action, where = event["action"], event["where"]
        if action == SUBMIT:
            raise Rejected(where, "submit can only be the first event.")
        if action in RUN_ACTIONS:
            raise Rejected(
                where,
                "provisioning runs are not imported; record the outcome with "
                "pick_up and complete instead.",
            )
        if action != COMMENT and action not in RULES:
            known = ", ".join([*RULES, COMMENT])
            raise Rejected(where, f"unknown action {action!r}; known: {known}.")
        try:
            if action == COMMENT:
                workflow.add_comment(
                    event["by"], request.pk, event["comment"], now=event["at"], notify=False
                )
            else:
                workflow.perform(
                    event["by"],
                    request.pk,
                    action,
                    comment=event["comment"],
                    due_at=event["due_at"],
                    assignee=event["assignee"],
                    now=event["at"],
                    notify=False,
                    imported=True,
                )
        except workflow.WorkflowError as exc:
            raise Rejected(where, exc.message) from None

    # -- fields

    def check_lengths(self, record: dict[str, Any]) -> None:
        for name, limit in MAX_LENGTHS.items():
            value = record.get(name)
            if value is not None and not isinstance(value, str | int):
                raise Rejected(name, f"must be text, not a JSON {_json_type(value)}.")
            if isinstance(value, str) and len(value.strip()) > limit:
                raise Rejected(name, f"{value!r} is longer than {limit} characters.")

    def cleaned(self, record: dict[str, Any], kind: str, submit: dict[str, Any]) -> dict[str, Any]:
        slug = record.get("instance")
        whole_category = kind == Kind.ACCESS and slug in (None, "")
        if not whole_category and (not isinstance(slug, str) or not slug.strip()):
            raise Rejected("instance", "name the instance (its slug).")
        slug = slug.strip().lower() if isinstance(slug, str) else ""
        instance = None
        if kind != Kind.CREATE and not whole_category:
            instance = self.instance_for(slug, record)
        customer = _text(record, "customer") or (instance.customer if instance else "")
        if whole_category:
            customer = ""  # access to every instance of a category belongs to no customer
        elif not customer:
            raise Rejected("customer", f"name the customer (no instance {slug!r} to take it from).")
        justification = record.get("justification")
        if justification is None:
            justification = submit["comment"]
        if not isinstance(justification, str):
            raise Rejected("justification", "must be text.")
        reasons = record.get("non_standard_reasons") or []
        if isinstance(reasons, str):
            reasons = [reasons]
        if not isinstance(reasons, list) or any(r not in NonStandardReason.values for r in reasons):
            raise Rejected(
                "non_standard_reasons",
                f"{reasons!r}: give a list of {', '.join(NonStandardReason.values)}.",
            )
        cleaned: dict[str, Any] = {
            "customer": customer,
            "instance": slug,
            "justification": justification,
            "non_standard_reasons": list(reasons),
        }
        if kind == Kind.ACCESS:
            cleaned.update(self.access_fields(record, instance))
        if kind == Kind.CREATE:
            cleaned.update(self.create_fields(record))
            if validation.exceeds_standard_scale(cleaned["users"], cleaned["repositories"]):
                if NonStandardReason.SCALE not in cleaned["non_standard_reasons"]:
                    cleaned["non_standard_reasons"].append(NonStandardReason.SCALE)
        elif kind == Kind.UPGRADE:
            version = _text(record, "target_version")
            if not version:
                raise Rejected("target_version", "an upgrade names the version it installs.")
            cleaned["target_version"] = version
            published = record.get("release_published_at")
            if published not in (None, ""):
                cleaned["release_published_at"] = parse_time(published, "release_published_at")
        return cleaned

    def create_fields(self, record: dict[str, Any]) -> dict[str, Any]:
        users = _count(record, "users")
        repositories = _count(record, "repositories")
        access = _text(record, "access") or Access.PUBLIC_SSO
        if access not in Access.values:
            raise Rejected("access", f"{access!r} is not one of {', '.join(Access.values)}.")
        ranges = record.get("allowed_ip_ranges") or []
        if isinstance(ranges, str):
            ranges = [ranges]
        if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
            raise Rejected("allowed_ip_ranges", "give a list of CIDR ranges as text.")
        return {
            "category": _choice(record, "category", Category.values) or Category.CUSTOMER,
            "machine_type": _text(record, "machine_type")
            or validation.recommended_machine_type(users, repositories),
            "zone": _text(record, "zone") or DEFAULT_ZONE,
            "access": access,
            "allowed_ip_ranges": [r.strip() for r in ranges if r.strip()],
            "users": users,
            "repositories": repositories,
            "target_version": _text(record, "target_version") or settings.INSTANCE_DEFAULT_VERSION,
        }

    def access_fields(self, record: dict[str, Any], instance: Instance | None) -> dict[str, Any]:
        """An access record's person, scope, category and expiry, as history gave them (an
        expiry in the past is history too); the category of a named instance is the instance's."""
        person = _text(record, "person")
        if not person:
            raise Rejected("person", "name who was given the access (a username or an email).")
        scope = _choice(record, "scope", AccessScope.values)
        if not scope:
            choices = ", ".join(AccessScope.values)
            raise Rejected("scope", f"give what the access was to: {choices}.")
        category = _choice(record, "category", Category.values)
        if instance is not None:
            category = instance.category
        elif not category:
            raise Rejected(
                "category",
                f"give the category of the instances ({', '.join(Category.values)}).",
            )
        expires = record.get("expires_at")
        return {
            "person": person,
            "scope": scope,
            "category": category,
            "expires_at": parse_time(expires, "expires_at") if expires not in (None, "") else None,
        }

    def instance_for(self, slug: str, record: dict[str, Any]) -> Instance | None:
        """The live instance a non-create record names; one is made (active) when the portal has
        never heard of the slug. A slug known only as torn down is left unlinked, as filing it
        live would leave it."""
        instance = instances.live(slug)
        if instance is not None or instances.ever_existed(slug):
            return instance
        customer = _text(record, "customer")
        if not customer:
            raise Rejected("customer", f"name the customer; the portal has no instance {slug!r}.")
        category = _choice(record, "category", Category.values) or Category.CUSTOMER
        try:
            return instances.create(slug, customer, InstanceStatus.ACTIVE, category=category)
        except instances.InstanceInvalid as exc:
            # The request's own fields keep their history; the instance must be a valid one.
            raise Rejected("instance", str(exc)) from None

    # -- the one rule the database cannot check for history

    def check_one_open_at_a_time(self, request: Request, submit: dict[str, Any]) -> None:
        """Live, an instance has at most one open provisioning request at a time; the database
        constraint sees only requests open now, so check the spans history gives."""
        if request.kind not in PROVISIONING_KINDS:
            return
        rows = (
            Request.objects.filter(instance_slug=request.instance_slug, kind__in=PROVISIONING_KINDS)
            .annotate(closed_at=Min("events__at", filter=Q(events__to_state__in=FINAL_STATES)))
            .values("pk", "kind", "external_id", "created_at", "closed_at")
        )
        spans = {span["pk"]: span for span in rows}
        mine = spans.pop(request.pk)
        for other in spans.values():
            if _overlap(mine, other):
                until = other["closed_at"].isoformat() if other["closed_at"] else "now"
                name = f"request #{other['pk']} ({other['kind']}"
                if other["external_id"]:
                    name += f", {other['external_id']}"
                raise Rejected(
                    submit["where"],
                    f"{name}) for {request.instance_slug!r} was open from "
                    f"{other['created_at'].isoformat()} to {until}; an instance has one open "
                    "provisioning request at a time.",
                )


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Do the open spans [created_at, closed_at) of two requests overlap (None: still open)?"""
    a_ends_after_b_starts = a["closed_at"] is None or a["closed_at"] > b["created_at"]
    b_ends_after_a_starts = b["closed_at"] is None or b["closed_at"] > a["created_at"]
    return a_ends_after_b_starts and b_ends_after_a_starts


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Rejected(name, f"must be text, not a JSON {_json_type(value)}.")
    return value.strip()


def _choice(record: dict[str, Any], name: str, values: list[str]) -> str:
    """One of `values` (the record's text; "" when it gives none); Rejected for any other."""
    value = _text(record, name)
    if value and value not in values:
        raise Rejected(name, f"{value!r} is not one of {', '.join(values)}.")
    return value


def _count(record: dict[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Rejected(name, f"{value!r} is not a whole number of 0 or more.")
    return value
