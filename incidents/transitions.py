"""The one table of what may happen to an incident: action -> (from state -> next state), who.
Pages, the API and the tests read it; nothing else decides."""

from dataclasses import dataclass

from incidents.models import UNRESOLVED_STATES, IncidentState
from portal import roles


@dataclass(frozen=True)
class Rule:
    action: str
    moves: dict[str, str]  # from state -> next state
    roles: tuple[str, ...]  # roles that may take it (a superuser passes too)
    label: str
    style: str = ""  # how the page shows the button: primary / danger / plain


RULES = {
    rule.action: rule
    for rule in [
        Rule(
            "ack",
            {IncidentState.OPEN: IncidentState.ACKNOWLEDGED},
            (roles.DEVOPS,),
            "Acknowledge",
            "primary",
        ),
        Rule(
            "mitigate",
            {IncidentState.ACKNOWLEDGED: IncidentState.MITIGATED},
            (roles.DEVOPS,),
            "Mark mitigated",
            "primary",
        ),
        Rule(
            "resolve",
            {
                IncidentState.ACKNOWLEDGED: IncidentState.RESOLVED,
                IncidentState.MITIGATED: IncidentState.RESOLVED,
            },
            (roles.DEVOPS,),
            "Resolve",
            "primary",
        ),
        # Who leads the response; the state stays. Serialised with the other actions by the
        # version compare-and-set.
        Rule(
            "commander",
            {state: state for state in UNRESOLVED_STATES},
            (roles.DEVOPS,),
            "Set commander",
        ),
    ]
}

ACTIONS = tuple(RULES)
OPEN_ROLES = (roles.CE, roles.DEVOPS)
UPDATE_ROLES = (roles.CE, roles.DEVOPS)
