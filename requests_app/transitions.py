"""The one table of what may happen to a request: action -> (from state -> next state), who.

Pages, the API, the importer and the tests all read this table; nothing else decides.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain

from portal import roles
from requests_app.models import OPEN_STATES, PROVISIONING_KINDS, Kind, Request, State

# approve routes by the request: non-standard ones go through Tech Review first...
BY_STANDARD = "by_standard"
# ...but for these kinds approval is the one decision (access: "with manager approval").
NO_TECH_REVIEW = (Kind.ACCESS,)
# Access is granted with a manager's approval, not CE Leadership's.
MANAGERS_DECIDE: dict[str, tuple[str, ...]] = {Kind.ACCESS: (roles.MANAGERS,)}


@dataclass(frozen=True)
class Rule:
    action: str
    moves: dict[str, str]  # from state -> next state (or BY_STANDARD)
    roles: tuple[str, ...]  # roles that may take it
    not_requester: bool = False  # separation of duties: never the requester, not even superuser
    requester_may: bool = False  # the requester may, whatever their role
    kinds: tuple[str, ...] = field(default=tuple(Kind))  # the kinds it applies to
    label: str = ""
    style: str = ""  # how the page shows the button: primary / danger / plain
    # Kinds whose requests this action is for other roles than `roles` (access: Managers).
    roles_by_kind: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def roles_for(self, kind: str) -> tuple[str, ...]:
        """The roles that may take this action on a request of `kind`."""
        return self.roles_by_kind.get(kind, self.roles)

    def next_state(self, request: Request) -> str:
        target = self.moves[request.state]
        if target == BY_STANDARD:
            standard = request.standard or request.kind in NO_TECH_REVIEW
            return State.QUEUED if standard else State.TECH_REVIEW
        return target


def _stay(*states: str) -> dict[str, str]:
    return {state: state for state in states}


RULES = {
    rule.action: rule
    for rule in [
        Rule(
            "approve",
            {State.PENDING_APPROVAL: BY_STANDARD},
            (roles.CE_LEADERSHIP,),
            not_requester=True,
            label="Approve",
            style="primary",
            roles_by_kind=MANAGERS_DECIDE,
        ),
        Rule(
            "reject",
            {State.PENDING_APPROVAL: State.REJECTED},
            (roles.CE_LEADERSHIP,),
            not_requester=True,
            label="Reject",
            style="danger",
            roles_by_kind=MANAGERS_DECIDE,
        ),
        Rule(
            "tech_approve",
            {State.TECH_REVIEW: State.QUEUED},
            (roles.TECH_REVIEW,),
            not_requester=True,
            label="Approve (tech review)",
            style="primary",
        ),
        Rule(
            "tech_reject",
            {State.TECH_REVIEW: State.REJECTED},
            (roles.TECH_REVIEW,),
            not_requester=True,
            label="Reject (tech review)",
            style="danger",
        ),
        Rule(
            "pick_up",
            {State.QUEUED: State.IN_PROGRESS},
            (roles.DEVOPS,),
            label="Pick up",
            style="primary",
        ),
        Rule(
            "wait_on_customer",
            {State.IN_PROGRESS: State.WAITING_ON_CUSTOMER},
            (roles.DEVOPS,),
            label="Wait on customer",
        ),
        Rule(
            "resume_work",
            {State.WAITING_ON_CUSTOMER: State.IN_PROGRESS},
            (roles.DEVOPS,),
            label="Resume work",
            style="primary",
        ),
        Rule(
            "complete",
            {State.IN_PROGRESS: State.DONE},
            (roles.DEVOPS,),
            label="Mark done",
            style="primary",
        ),
        # Who holds the request: any DevOps member may (re)assign it, or leave it to nobody,
        # without moving it. Serialised with the other actions by the version compare-and-set.
        Rule(
            "assign",
            _stay(State.QUEUED, State.IN_PROGRESS, State.WAITING_ON_CUSTOMER),
            (roles.DEVOPS,),
            label="Assign",
        ),
        Rule(
            "set_target",
            _stay(State.QUEUED, State.IN_PROGRESS, State.WAITING_ON_CUSTOMER),
            (roles.DEVOPS,),
            kinds=(Kind.FEATURE,),
            label="Set target date",
        ),
        # Provisioning runs: the request stays in progress while its run plans and applies.
        Rule(
            "plan",
            _stay(State.IN_PROGRESS),
            (roles.DEVOPS,),
            kinds=PROVISIONING_KINDS,
            label="Plan",
            style="primary",
        ),
        Rule(
            "confirm",
            _stay(State.IN_PROGRESS),
            (roles.DEVOPS,),
            kinds=PROVISIONING_KINDS,
            label="Confirm and apply the plan",
            style="primary",
        ),
        Rule(
            "discard",
            _stay(State.IN_PROGRESS),
            (roles.DEVOPS,),
            kinds=PROVISIONING_KINDS,
            label="Discard the plan",
        ),
        Rule(
            "retry",
            _stay(State.IN_PROGRESS),
            (roles.DEVOPS,),
            kinds=PROVISIONING_KINDS,
            label="Retry the run",
            style="primary",
        ),
        Rule(
            "cancel",
            {state: State.CANCELLED for state in OPEN_STATES},
            (roles.CE_LEADERSHIP,),
            requester_may=True,
            label="Cancel request",
            style="danger",
        ),
    ]
}

ACTIONS = tuple(RULES)
RUN_ACTIONS = ("plan", "confirm", "discard", "retry")
FILE_ROLES = (roles.CE, roles.SALES)
# Kinds that other roles may file too: anyone may ask for access (for themselves or others).
FILE_ROLES_BY_KIND: dict[str, tuple[str, ...]] = {Kind.ACCESS: roles.ALL_ROLES}


def file_roles(kind: str) -> tuple[str, ...]:
    """Who may file a request of `kind`."""
    return FILE_ROLES_BY_KIND.get(kind, FILE_ROLES)


# Who may file a request of some kind (the "New request" page).
ANY_FILE_ROLES = tuple(dict.fromkeys(chain(FILE_ROLES, *FILE_ROLES_BY_KIND.values())))
COMMENT_ROLES = tuple(r for r in roles.ALL_ROLES if r != roles.MANAGERS)
READ_ROLES = roles.ALL_ROLES
