"""Every change to an incident goes through a function here (pages and API alike).

Each runs in one transaction: it checks who may act (403, first), whether the state allows it
(409), then the input (400); it moves the row with a compare-and-set on its state and version
(0 rows: someone else acted first, 409) and writes the timeline event, the timers and the
notifications in the same transaction. The errors are those of the request workflow, so the API
answers them alike."""

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from incidents import notices, timers
from incidents.models import (
    ACKNOWLEDGE,
    RESOLUTION,
    Incident,
    IncidentEvent,
    IncidentState,
)
from incidents.transitions import OPEN_ROLES, RULES, UPDATE_ROLES, Rule
from portal import roles
from provisioning.models import Instance
from requests_app.workflow import Conflict, Forbidden, Invalid, devops_member

if TYPE_CHECKING:
    from portal.roles import AnyUser

__all__ = ["Conflict", "Forbidden", "Invalid"]


def can_open(user: "AnyUser") -> TypeGuard[User]:
    return user.is_active and roles.has_role(user, *OPEN_ROLES)


def can_update(user: "AnyUser") -> TypeGuard[User]:
    return user.is_active and roles.has_role(user, *UPDATE_ROLES)


def check_action(user: "AnyUser", incident: Incident, action: str) -> Rule:
    """Raise Forbidden / Conflict when `user` may not take `action` on `incident` now."""
    rule = RULES.get(action)
    if rule is None:
        raise Invalid(f"Unknown action {action!r}.", {"action": [f"Unknown action {action!r}."]})
    if not user.is_active or not roles.has_role(user, *rule.roles):
        raise Forbidden(f"Only DevOps may {rule.label.lower()} incidents.")
    if incident.state not in rule.moves:
        raise Conflict(
            f"Incident #{incident.pk} is {incident.get_state_display().lower()}; "
            f"{rule.label.lower()} is not possible now."
        )
    return rule


def allowed_actions(user: "AnyUser", incident: Incident) -> list[str]:
    """The actions this person may take on this incident now (the buttons a page shows)."""
    allowed = []
    for action in RULES:
        try:
            check_action(user, incident, action)
        except (Forbidden, Conflict, Invalid):
            continue
        allowed.append(action)
    return allowed


def open_incident(
    user: "AnyUser",
    *,
    title: str,
    severity: str,
    instances: Sequence[Instance],
    description: str = "",
    now: datetime | None = None,
    notify: bool = True,
) -> Incident:
    """Open an incident (validated input: the form's cleaned data). Both timers start now and
    DevOps are told, in the same transaction."""
    now = now or timezone.now()
    if not can_open(user):
        raise Forbidden("Only CE and DevOps open incidents.")
    with transaction.atomic():
        incident = Incident(
            title=title,
            severity=severity,
            description=description,
            opened_by=user,
            created_at=now,
        )
        timers.recompute(incident)
        incident.save(force_insert=True)
        incident.instances.set(instances)
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            by=user,
            action="open",
            from_state="",
            to_state=IncidentState.OPEN,
            data={"severity": severity, "instances": sorted(i.slug for i in instances)},
        )
        if notify:
            notices.opened(incident, instances, now)
    return incident


def perform(
    user: "AnyUser",
    incident_id: int,
    action: str,
    *,
    comment: str | None = "",
    postmortem_url: str | None = "",
    commander: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Take `action` on incident `incident_id` as `user`; returns the incident as it is now.

    `postmortem_url`: for `resolve` (required for sev1 and sev2). `commander`: for the
    `commander` action, the username of a DevOps member (None or "": nobody)."""
    now = now or timezone.now()
    with transaction.atomic():
        # No lock on read: the action is judged against the incident as this person saw it,
        # and the compare-and-set on (state, version) below makes the slower of two actions
        # on the same version lose with a 409, whether or not they move the state.
        incident = Incident.objects.select_related("commander").get(pk=incident_id)
        rule = check_action(user, incident, action)
        assert not isinstance(user, AnonymousUser)  # check_action refuses who is not active
        old_state = incident.state
        new_state = rule.moves[old_state]
        changes: dict[str, Any] = {
            "state": new_state,
            "updated_at": now,
            "version": incident.version + 1,
        }
        data: dict[str, Any] = {}
        if action == "ack":
            changes[f"{ACKNOWLEDGE}_stopped_at"] = now
            if incident.commander_id is None:
                changes["commander"] = user
                data["commander"] = user.get_username()
        elif action == "mitigate":
            changes["mitigated_at"] = now
        elif action == "resolve":
            url = (postmortem_url or "").strip()
            if incident.needs_postmortem and not url:
                problem = (
                    f"A {incident.severity} incident is resolved with a link to its postmortem."
                )
                raise Invalid(problem, {"postmortem_url": [problem]})
            changes[f"{RESOLUTION}_stopped_at"] = now
            if url:
                changes["postmortem_url"] = url
                data["postmortem_url"] = url
        elif action == "commander":
            holder = devops_member(commander, field="commander", duty="command incidents")
            changes["commander"] = holder
            data["commander"] = holder.get_username() if holder else None
            data["previous"] = incident.commander.get_username() if incident.commander else None
        updated = Incident.objects.filter(
            pk=incident.pk, state=old_state, version=incident.version
        ).update(**changes)
        if not updated:
            raise Conflict(f"Incident #{incident.pk} was changed by someone else first; reload.")
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            by=user,
            action=action,
            from_state=old_state,
            to_state=new_state,
            body=(comment or "").strip(),
            data=data,
        )
    incident.refresh_from_db()
    return incident


def add_update(
    user: "AnyUser", incident_id: int, body: str | None, *, now: datetime | None = None
) -> Incident:
    """An update of the timeline (what is known, what is being done). CE and DevOps write
    them, in any state; it moves nothing."""
    now = now or timezone.now()
    if not can_update(user):
        raise Forbidden("Only CE and DevOps post incident updates.")
    text = (body or "").strip()
    if not text:
        raise Invalid("Write the update.", {"body": ["Write the update."]})
    with transaction.atomic():
        incident = Incident.objects.get(pk=incident_id)
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            by=user,
            action="update",
            from_state=incident.state,
            to_state=incident.state,
            body=text,
        )
        Incident.objects.filter(pk=incident.pk).update(updated_at=now)
    incident.refresh_from_db()
    return incident
