"""Every change to a request goes through a function here.

Each one runs in one transaction: it checks who may act (403), whether the state allows it
(409), changes the row with a compare-and-set on its state and version (0 rows: someone else
acted first, 409; the version makes actions that keep the state, like `confirm`, conflict too)
and writes the history event in the same transaction. Pages, the API and the importer call these.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import F, Field
from django.utils import timezone

from portal import roles
from provisioning import instances, outcomes, runs, verify
from provisioning.models import (
    Category,
    Instance,
    InstanceStatus,
    Run,
    RunState,
    project_id_for,
)
from requests_app import notifications, signals
from requests_app.models import (
    FINAL_STATES,
    OPEN_STATES,
    PROVISIONING_KINDS,
    Approval,
    Comment,
    Event,
    Kind,
    Request,
    State,
)
from requests_app.sla import timers
from requests_app.transitions import (
    ANY_FILE_ROLES,
    COMMENT_ROLES,
    RULES,
    RUN_ACTIONS,
    Rule,
    file_roles,
)

if TYPE_CHECKING:
    from portal.roles import AnyUser


class WorkflowError(Exception):
    status = 400

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Forbidden(WorkflowError):
    status = 403


class Conflict(WorkflowError):
    status = 409


class Invalid(WorkflowError):
    status = 400


# -- who may do what ----------------------------------------------------------------------------


def role_allows(user: "AnyUser", rule: Rule, request: Request) -> bool:
    """The role half of the check (403): may this person ever take this action here?"""
    if rule.requester_may and request.requested_by_id == user.pk:
        return True
    return roles.has_role(user, *rule.roles_for(request.kind))


def check_action(user: "AnyUser", request: Request, action: str) -> Rule:
    """Raise Forbidden / Conflict when `user` may not take `action` on `request` now."""
    rule = RULES.get(action)
    if rule is None:
        raise Invalid(f"Unknown action {action!r}.", {"action": [f"Unknown action {action!r}."]})
    if not user.is_active or not role_allows(user, rule, request):
        who = list(rule.roles_for(request.kind)) + (["its requester"] if rule.requester_may else [])
        raise Forbidden(
            f"Your role may not {action.replace('_', ' ')} this request; only "
            f"{' or '.join(who)} may."
        )
    if rule.not_requester and request.requested_by_id == user.pk:
        raise Forbidden(f"You filed request #{request.pk}; someone else must {rule.label.lower()}.")
    if request.kind not in rule.kinds:
        raise Conflict(f"{action} does not apply to {request.kind} requests.")
    if request.state not in rule.moves:
        raise Conflict(
            f"Request #{request.pk} is {request.get_state_display().lower()}; "
            f"{action} is not possible now."
        )
    if action in RUN_ACTIONS:
        _check_run_action(user, request, action)
    if action == "wait_on_customer" and runs.applying_run(request.pk) is not None:
        raise Conflict("A provisioning run is applying; wait for it to finish.")
    return rule


def _check_run_action(user: "AnyUser", request: Request, action: str) -> None:
    """Run actions depend on the request's runs as well as its state (409 when they don't fit),
    and the confirm of destruction on who planned it (403)."""
    latest = runs.latest_run(request.pk)
    if action in ("plan", "retry"):
        if request.kind != Kind.CREATE and request.instance_id is None:
            raise Conflict("The instance of this request does not exist.")
        busy = runs.active_run(request.instance_id) if request.instance_id else None
        if busy is not None:
            raise Conflict(f"Run #{busy.pk} is {busy.get_state_display().lower()}.")
        if action == "plan" and latest is not None and latest.state == RunState.ERRORED:
            raise Conflict(f"Run #{latest.pk} errored: retry it (or discard nothing).")
        if action == "retry" and (latest is None or latest.state != RunState.ERRORED):
            raise Conflict("There is no errored run to retry.")
        if action == "plan" and latest is not None and latest.state == RunState.APPLIED:
            raise Conflict(f"Run #{latest.pk} already applied this request.")
        if request.kind == Kind.RESUME and request.instance is not None:
            missing = runs.resume_refusal(request.instance)
            if missing:
                raise Conflict(missing)
    elif latest is None or latest.state != RunState.PLANNED:
        raise Conflict(
            f"There is no plan waiting to be {'confirmed' if action == 'confirm' else 'discarded'}."
        )
    elif action == "confirm" and latest.needs_second_person() and latest.created_by_id == user.pk:
        what = "tears down the instance" if latest.kind == Kind.TEARDOWN else "destroys data"
        raise Forbidden(
            f"Run #{latest.pk} {what}; you planned it, so someone else in DevOps must confirm "
            "it (a second person)."
        )


def allowed_actions(user: "AnyUser", request: Request) -> list[str]:
    """The actions this person may take on this request now (the buttons a page shows)."""
    allowed = []
    for action in RULES:
        try:
            check_action(user, request, action)
        except WorkflowError:
            continue
        allowed.append(action)
    return allowed


def can_file(user: "AnyUser", kind: str) -> TypeGuard[User]:
    """May this person file a request of `kind` (CE and Sales; access: any role)?"""
    return roles.has_role(user, *file_roles(kind))


def can_file_any(user: "AnyUser") -> TypeGuard[User]:
    """May this person file a request of some kind (the "New request" page)?"""
    return roles.has_role(user, *ANY_FILE_ROLES)


def file_refusal(kind: str) -> str:
    """Why a person may not file a request of `kind`."""
    if kind == Kind.ACCESS:
        return "Your account has no role in the portal, so it may not ask for access."
    return f"Only {' and '.join(file_roles(kind))} file requests."


def can_comment(user: "AnyUser") -> TypeGuard[User]:
    return roles.has_role(user, *COMMENT_ROLES)


def can_read(user: "AnyUser") -> bool:
    return user.is_active and (user.is_superuser or bool(roles.roles_of(user)))


# -- filing -------------------------------------------------------------------------------------


FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    Kind.CREATE: (
        "category",
        "machine_type",
        "zone",
        "access",
        "allowed_ip_ranges",
        "users",
        "repositories",
        "target_version",
    ),
    Kind.UPGRADE: ("target_version", "release_published_at"),
    Kind.ACCESS: ("person", "scope", "category", "expires_at"),
}
# Access requests have one decision, a manager's: never tech review, so no reasons to give.
NO_REASONS = (Kind.ACCESS,)


def file_request(
    user: "AnyUser",
    kind: str,
    cleaned: Mapping[str, Any],
    *,
    now: datetime | None = None,
    notify: bool = True,
    external_id: str | None = None,
) -> Request:
    """File a validated request (`cleaned` comes from the kind's form). A request about an
    existing instance takes its category; a create or an access for a whole category takes the
    one given (default: customer)."""
    now = now or timezone.now()
    if not can_file(user, kind):
        raise Forbidden(file_refusal(kind))
    reasons = [] if kind in NO_REASONS else sorted(set(cleaned.get("non_standard_reasons") or []))
    fields = {name: cleaned[name] for name in FIELDS_BY_KIND.get(kind, ()) if name in cleaned}
    if kind == Kind.UPGRADE and not fields.get("release_published_at"):
        fields["release_published_at"] = now
    slug = cleaned.get("instance") or ""
    instance = None
    if kind != Kind.CREATE and slug:
        instance = instances.live(slug)
    fields["category"] = (
        instance.category if instance is not None else fields.get("category") or Category.CUSTOMER
    )
    try:
        with transaction.atomic():
            request = Request(
                kind=kind,
                customer=cleaned.get("customer") or "",
                instance_slug=slug,
                instance=instance,
                justification=cleaned.get("justification", ""),
                non_standard_reasons=reasons,
                standard=not reasons,
                requested_by=user,
                external_id=external_id,
                created_at=now,
                **fields,
            )
            timers.on_filed(request)
            request.save(force_insert=True)
            event = Event.objects.create(
                request=request,
                at=now,
                by=user,
                action="submit",
                from_state="",
                to_state=State.PENDING_APPROVAL,
                comment=cleaned.get("justification", ""),
            )
            if notify:
                notifications.on_event(request, event, now)
    except IntegrityError as exc:
        if "one_open_provisioning_request" in str(exc):
            raise Conflict(
                f"Another request for {slug!r} was filed at the same moment.",
                {"instance": [f"Another open request for {slug!r} exists."]},
            ) from None
        raise
    return request


# -- editing ------------------------------------------------------------------------------------

EDITABLE = ("justification", "non_standard_reasons")


def edit_request(
    user: "AnyUser",
    request_id: int,
    cleaned: Mapping[str, Any],
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> Request:
    """The requester changes their request while it waits for approval; the event lists what
    changed (old and new). `version`: the version the person edited (a change made since is a
    409, not overwritten)."""
    now = now or timezone.now()
    with transaction.atomic():
        request = Request.objects.select_for_update().get(pk=request_id)
        if not user.is_active or request.requested_by_id != user.pk:
            raise Forbidden("Only the person who filed a request may edit it.")
        if request.state != State.PENDING_APPROVAL:
            raise Conflict(
                f"Request #{request.pk} is {request.get_state_display().lower()}; a request can "
                "be edited only until it is approved."
            )
        if version is not None and version != request.version:
            raise Conflict(f"Request #{request.pk} was changed since you opened it; reload.")
        fields = (*EDITABLE, *FIELDS_BY_KIND.get(request.kind, ()))
        changes: dict[str, Any] = {}
        for name in fields:
            if name not in cleaned:
                continue
            new = cleaned[name]
            if name == "non_standard_reasons":
                new = sorted(set(new or []))
            if new != getattr(request, name):
                changes[name] = new
        if not changes:
            return request
        shown = {
            name: [_plain(getattr(request, name)), _plain(value)] for name, value in changes.items()
        }
        if "non_standard_reasons" in changes:
            changes["standard"] = not changes["non_standard_reasons"]
        Request.objects.filter(pk=request.pk).update(
            **changes, updated_at=now, version=F("version") + 1
        )
        request.refresh_from_db()
        event = Event.objects.create(
            request=request,
            at=now,
            by=user,
            action="edit",
            from_state=request.state,
            to_state=request.state,
            comment="Changed " + ", ".join(name.replace("_", " ") for name in shown) + ".",
            data={"changed": shown},
        )
        # Nobody is mailed about an edit; a Slack approval message shows what changed.
        notifications.on_event(request, event, now)
    return request


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# -- maintenance --------------------------------------------------------------------------------


def file_maintenance_upgrade(
    portal_user: User,
    instance: Instance,
    version: str,
    published_at: datetime,
    now: datetime,
    *,
    why: str = "",
) -> Request | None:
    """The upgrade a release opens for an instance behind it: filed by the portal's own user,
    queued at once (maintenance needs no approval), resolution due 7 days after publication
    (the upgrade policy's clock runs from `release_published_at`). None when another open
    request already changes the instance (the caller tries again when that one ends)."""
    justification = why or f"Maintenance: upgrade to release {version}."
    request = Request(
        kind=Kind.UPGRADE,
        state=State.QUEUED,
        customer=instance.customer,
        instance_slug=instance.slug,
        instance=instance,
        category=instance.category,
        justification=justification,
        requested_by=portal_user,
        created_at=now,
        target_version=version,
        release_published_at=published_at,
    )
    try:
        with transaction.atomic():
            timers.on_filed(request)
            request.save(force_insert=True)
            event = Event.objects.create(
                request=request,
                at=now,
                by=portal_user,
                action="submit",
                from_state="",
                to_state=State.QUEUED,
                comment=f"{justification} Maintenance needs no approval: queued for DevOps.",
                data={"from_version": instance.version},
            )
            _save_timers(request, timers.on_event(request, event, portal_user))
    except IntegrityError as exc:
        if "one_open_provisioning_request" in str(exc):
            return None
        raise
    return request


def supersede(request_id: int, version: str, portal_user: User, now: datetime) -> bool:
    """Cancel an open upgrade that a newer release replaces ("superseded by <version>"), with
    its run if it has not started applying. False when it is applying (it finishes, and the
    newer upgrade opens when it ends) or when it is no longer open."""
    with transaction.atomic():
        request = Request.objects.select_for_update().get(pk=request_id)
        if request.state not in OPEN_STATES or runs.applying_run(request.pk) is not None:
            return False
        old_state = request.state
        Request.objects.filter(pk=request.pk).update(
            state=State.CANCELLED, updated_at=now, version=F("version") + 1
        )
        request.state = State.CANCELLED
        event = Event.objects.create(
            request=request,
            at=now,
            by=portal_user,
            action="cancel",
            from_state=old_state,
            to_state=State.CANCELLED,
            comment=f"superseded by {version}",
        )
        _save_timers(request, timers.on_event(request, event, portal_user))
        try:
            runs.end_with_request(request.pk, portal_user, now, f"superseded by {version}")
        except runs.RunRefused:  # it started applying since the check: let it finish
            transaction.set_rollback(True)
            return False
    return True


# -- actions ------------------------------------------------------------------------------------


def perform(
    user: "AnyUser",
    request_id: int,
    action: str,
    *,
    comment: str | None = "",
    due_at: datetime | None = None,
    confirm: str | None = "",
    assignee: str | None = None,
    now: datetime | None = None,
    notify: bool = True,
    imported: bool = False,
    queue_jobs: bool = True,
    version: int | None = None,
) -> Request:
    """Take `action` on request `request_id` as `user`; returns the updated request.

    `version`: the version of the request the person decided on (a Slack message shows one);
    a change made since is a 409, as if it had raced the action.

    `assignee`: for `assign`, the username of the DevOps member who is to hold the request
    (None or "": nobody).

    `imported`: history replayed by the importer, taken as it happened (a provisioning request
    completed by hand then needs no Compute reading). `queue_jobs=False`: a run started or
    confirmed here is executed by the caller in its own process (the demo seed), not queued."""
    now = now or timezone.now()
    reading = None
    if action == "complete" and not imported:
        reading = _read_compute_for_complete(user, request_id)
    with transaction.atomic():
        # No lock on read: the action is judged against the request as this person saw it, and
        # the compare-and-set on (state, version) below makes the slower of two actions on the
        # same version lose with a 409, whether or not they change the state.
        request = Request.objects.with_related().get(pk=request_id)
        rule = check_action(user, request, action)
        assert not isinstance(user, AnonymousUser)  # check_action refuses who is not active
        if version is not None and version != request.version:
            raise Conflict(f"Request #{request.pk} was changed since you saw it; look again.")
        old_state = request.state
        new_state = rule.next_state(request)
        changes: dict[str, Any] = {
            "state": new_state,
            "updated_at": now,
            "version": request.version + 1,
        }
        data: dict[str, Any] = {"due_at": due_at.isoformat()} if due_at else {}
        if action == "pick_up":
            changes["assignee"] = user
        if action == "assign":
            holder = devops_member(assignee)
            changes["assignee"] = holder
            data["assignee"] = holder.get_username() if holder else None
            data["previous"] = request.assignee.get_username() if request.assignee else None
        if action == "set_target":
            if due_at is None:
                raise Invalid("Give the target date.", {"due_at": ["Give the target date."]})
            if due_at <= now:
                raise Invalid("The target must be in the future.", {"due_at": ["Past date."]})
            changes["target_due_at"] = due_at
        if action == "complete" and request.kind == Kind.ACCESS:
            grant = _grant(request, user, now, imported)
            changes.update(grant)
            data["granted"] = {name: _plain(value) for name, value in grant.items()}
            data["granted"]["granted_by"] = user.get_username()
            typed = (comment or "").strip()
            said = grant_words(request, grant["expires_at"])
            comment = f"{said}\n\n{typed}" if typed else said
        if action in ("reject", "tech_reject") and not imported and not (comment or "").strip():
            raise Invalid(
                "Say why the request is rejected.",
                {"comment": ["A reason is required to reject a request."]},
            )
        if action == "confirm" and request.kind == Kind.TEARDOWN:
            if (confirm or "").strip().lower() != request.instance_slug:
                raise Invalid(
                    "Type the slug to confirm the teardown.",
                    {"confirm": [f"Type {request.instance_slug!r} to confirm the teardown."]},
                )
        updated = Request.objects.filter(
            pk=request.pk, state=old_state, version=request.version
        ).update(**changes)
        if not updated:
            raise Conflict(f"Request #{request.pk} was changed by someone else first; reload.")
        for name, value in changes.items():
            setattr(request, name, value)
        # The update holds the row lock now: read the timers as they are, not as they were.
        request.refresh_from_db(fields=timers.TIMER_FIELDS)
        if reading is not None:
            data["compute"] = reading.as_json()
            comment = "\n\n".join(p for p in ((comment or "").strip(), reading.describe()) if p)
        event = Event.objects.create(
            request=request,
            at=now,
            by=user,
            action=action,
            from_state=old_state,
            to_state=new_state,
            comment=comment or "",
            data=data,
        )
        _save_timers(request, timers.on_event(request, event, user))
        if action in ("approve", "reject", "tech_approve", "tech_reject"):
            _record_decision(request, user, action, now)
        if action == "complete":
            apply_outcome(request, now, reading)
        if action in RUN_ACTIONS:
            _run_action(request, action, user, now, queue_jobs)
        if new_state in (State.CANCELLED, State.REJECTED):
            _end_runs(request, user, action, now)
        if notify:
            notifications.on_event(request, event, now)
        if new_state != old_state and new_state in FINAL_STATES:
            signals.request_ended.send(sender=Request, request=request, at=now)
    return request


def _grant(request: Request, user: User, now: datetime, imported: bool) -> dict[str, Any]:
    """What `complete` of an access request records: who granted it, when, and until when
    (the expiry asked for, else ACCESS_DEFAULT_DAYS from now). An expiry asked for that has
    passed by the time of the grant is a 409: the requester files again with a new one."""
    expires = request.expires_at or now + timedelta(days=settings.ACCESS_DEFAULT_DAYS)
    if expires <= now and not imported:
        when = timezone.localtime(expires).strftime("%Y-%m-%d %H:%M %Z")
        raise Conflict(
            f"The access was asked for until {when}, which has passed: nothing to grant. "
            "Cancel the request and file a new one with a later expiry.",
            {"expires_at": [f"{when} has passed."]},
        )
    return {"granted_at": now, "granted_by": user, "expires_at": expires}


def grant_words(request: Request, expires_at: datetime) -> str:
    """ "granted vault to jo@example.com until 2027-02-26 10:00 PST" (the history's words)."""
    until = timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M %Z")
    return f"granted {request.scope} to {request.person} until {until}"


def devops_members() -> list[User]:
    """Who may hold a request: the active members of DevOps, by username."""
    return list(
        User.objects.filter(groups__name=roles.DEVOPS, is_active=True)
        .distinct()
        .order_by("username")
    )


def devops_member(
    username: str | None, field: str = "assignee", duty: str = "hold requests"
) -> User | None:
    """The active DevOps member `username` names (None for nobody: None or blank); Invalid
    with a `field` error for anyone else (only DevOps members `duty`)."""
    name = (username or "").strip()
    if not name:
        return None
    found = User.objects.filter(username=name).first()
    if found is None:
        problem = f"There is no user {name!r}."
    elif not found.is_active:
        problem = f"{name} is not active any more."
    elif not found.groups.filter(name=roles.DEVOPS).exists():
        problem = f"{name} is not in DevOps; only DevOps members {duty}."
    else:
        return found
    raise Invalid(problem, {field: [problem]})


def _record_decision(request: Request, user: User, action: str, now: datetime) -> None:
    if request.kind == Kind.ACCESS:
        stage = Approval.Stage.MANAGERS
    elif action in ("approve", "reject"):
        stage = Approval.Stage.LEADERSHIP
    else:
        stage = Approval.Stage.TECH_REVIEW
    Approval.objects.create(
        request=request,
        stage=stage,
        approver=user,
        requester_id=request.requested_by_id,
        approved=action in ("approve", "tech_approve"),
        at=now,
    )


def _end_runs(request: Request, user: User, action: str, now: datetime) -> None:
    """No run outlives its request: a run not yet applying is discarded with it (409 while one
    applies), and a create whose instance was never built frees the slug."""
    try:
        runs.end_with_request(request.pk, user, now, f"The request was {request.state}.")
    except runs.RunRefused as exc:
        raise Conflict(str(exc)) from None
    if request.kind == Kind.CREATE and request.instance is not None:
        instances.release_unbuilt(request.instance)


def _read_compute_for_complete(user: "AnyUser", request_id: int) -> verify.Observation | None:
    """Mark done by hand of a provisioning request: allowed only when Compute, read now,
    already shows its outcome (a run is the normal way). Returns what was read."""
    request = Request.objects.with_related().get(pk=request_id)
    check_action(user, request, "complete")  # 403/409 first, as for any action
    if request.kind not in PROVISIONING_KINDS:
        return None
    instance = request.instance
    slug = request.instance_slug
    project = instance.gcp_project if instance else project_id_for(slug)
    zone = (instance.zone if instance else request.zone) or instance_fields(request)["zone"]
    try:
        reading = verify.observe(slug, project, zone)
    except verify.ComputeUnavailable as exc:
        raise Conflict(f"{exc} A provisioning request is done when its run applies.") from None
    if not verify.outcome_shown(request.kind, reading, request.target_version):
        raise Conflict(
            f"{reading.describe()} That is not what a finished {request.kind} leaves: plan and "
            "apply a run instead (or finish the work so that Compute shows it).",
            {"compute": [reading.describe()]},
        )
    return reading


def apply_outcome(
    request: Request, now: datetime, reading: verify.Observation | None = None
) -> None:
    """What a request done by hand means for its instance: imported history (no `reading`)
    or work Compute already shows (`reading`). A run does the same when it applies, through the
    same provisioning.outcomes function."""
    if request.kind == Kind.CREATE:
        fields = instance_fields(request)
        if request.instance is None:
            try:
                instance = instances.create(
                    request.instance_slug, request.customer, InstanceStatus.PROVISIONING, **fields
                )
            except (instances.InstanceExists, instances.InstanceInvalid) as exc:
                raise Conflict(str(exc)) from None
        else:
            instance = instances.update(request.instance, customer=request.customer, **fields)
        outcomes.apply_outcome(instance, Kind.CREATE)
        if request.instance_id is None:
            Request.objects.filter(pk=request.pk).update(instance=instance)
            request.instance = instance
        return
    if request.instance is not None and request.kind in PROVISIONING_KINDS:
        changes: dict[str, Any] = {"version": request.target_version}
        if reading is not None and request.kind == Kind.SUSPEND:
            changes["snapshot"] = reading.snapshots[-1]
        outcomes.apply_outcome(request.instance, request.kind, changes=changes)


def instance_fields(request: Request) -> dict[str, Any]:
    """What a create request asks of its instance; a field left empty takes the model's default."""

    def default(name: str) -> Any:
        field = Instance._meta.get_field(name)
        assert isinstance(field, Field)  # a column of the instance, not a relation
        return field.default

    return {
        "category": request.category or default("category"),
        "zone": request.zone or default("zone"),
        "machine_type": request.machine_type or default("machine_type"),
        "access": request.access or default("access"),
        "allowed_ip_ranges": request.allowed_ip_ranges,
        "users": request.users,
        "repositories": request.repositories,
        "version": request.target_version or "",
    }


def _run_action(
    request: Request, action: str, user: User, now: datetime, queue_jobs: bool = True
) -> None:
    try:
        if action in ("plan", "retry"):
            instance = request.instance
            if request.kind == Kind.CREATE:
                instance = runs.instance_for_create(
                    request.instance_slug, request.customer, instance_fields(request)
                )
                if request.instance_id != instance.pk:
                    Request.objects.filter(pk=request.pk).update(instance=instance)
                    request.instance = instance
            if instance is None:  # _check_run_action refused a plan without one
                raise Conflict("The instance of this request does not exist.")
            changes = {"version": request.target_version} if request.kind == Kind.UPGRADE else {}
            runs.start(instance, request.pk, request.kind, user, changes, now, queue_job=queue_jobs)
        elif action == "confirm":
            runs.confirm(_planned_run(request), user, now, queue_job=queue_jobs)
        elif action == "discard":
            runs.discard(_planned_run(request), user, now)
    except runs.RunRefused as exc:
        raise Conflict(str(exc)) from None


def _planned_run(request: Request) -> Run:
    """The run whose plan waits for a confirm (_check_run_action made sure there is one)."""
    run = runs.latest_run(request.pk)
    if run is None:
        raise Conflict("There is no plan waiting.")
    return run


def finish_by_run(run: Run, at: datetime) -> Request | None:
    """A provisioning run applied: its request is done (the instance is already updated)."""
    if run.request_id is None:  # a run of the portal's own (the demo seed): no request
        return None
    with transaction.atomic():
        request = Request.objects.with_related().get(pk=run.request_id)
        old_state = request.state
        if old_state not in (State.IN_PROGRESS, State.WAITING_ON_CUSTOMER):
            return request
        updated = Request.objects.filter(pk=request.pk, state=old_state).update(
            state=State.DONE, updated_at=at, version=F("version") + 1
        )
        if not updated:
            return request
        request.state = State.DONE
        request.refresh_from_db(fields=timers.TIMER_FIELDS)
        event = Event.objects.create(
            request=request,
            at=at,
            by=None,
            action="complete",
            from_state=old_state,
            to_state=State.DONE,
            comment=f"Provisioning run #{run.pk} applied.",
            data={"run": run.pk},
        )
        _save_timers(request, timers.on_event(request, event, None))
        notifications.on_event(request, event, at)
        signals.request_ended.send(sender=Request, request=request, at=at)
    return request


def record_run_event(
    run: Run, action: str, comment: str | None, at: datetime, user: User | None
) -> None:
    """A provisioning step in the request's history, in the run's own transaction."""
    if run.request_id is None:
        return
    request = Request.objects.filter(pk=run.request_id).only("state").first()
    if request is None:
        return
    Event.objects.create(
        request_id=run.request_id,
        at=at,
        by=user,
        action=action,
        from_state=request.state,
        to_state=request.state,
        comment=comment or "",
        data={"run": run.pk},
    )


# -- comments -----------------------------------------------------------------------------------


def add_comment(
    user: "AnyUser",
    request_id: int,
    body: str | None,
    *,
    now: datetime | None = None,
    notify: bool = True,
) -> Request:
    now = now or timezone.now()
    body = (body or "").strip()
    if not can_comment(user):
        raise Forbidden("Managers read requests; they do not comment.")
    if not body:
        raise Invalid("Write a comment.", {"body": ["Write a comment."]})
    with transaction.atomic():
        request = Request.objects.select_for_update().get(pk=request_id)
        event = Event.objects.create(
            request=request,
            at=now,
            by=user,
            action="comment",
            from_state=request.state,
            to_state=request.state,
            comment=body,
        )
        # Its insert also brings the request's search vector up to date, in this transaction
        # (a trigger: migration 0006_request_search).
        Comment.objects.create(request=request, author=user, body=body, created_at=now, event=event)
        _save_timers(request, timers.on_event(request, event, user))
    return request


def _save_timers(request: Request, changed: set[str]) -> None:
    if changed:
        Request.objects.filter(pk=request.pk).update(**{f: getattr(request, f) for f in changed})
