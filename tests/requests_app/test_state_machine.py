"""Random sequences of actions by random people against the workflow (hypothesis.stateful).

Every step goes through `workflow.perform` / `workflow.add_comment` and must either succeed or
answer Forbidden / Conflict / Invalid - exactly the answer docs/workflow.md gives, written
out again below independently of `transitions.RULES`. After every step: states stay in the state
list, moves stay in the transitions table, final states never change, and the history replays to
the current state.
"""

from datetime import UTC, datetime, timedelta

import hypothesis
import pytest
from django.db import transaction
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from portal import roles
from provisioning.models import Instance, InstanceStatus, project_id_for, url_for
from requests_app import workflow
from requests_app.models import (
    FINAL_STATES,
    OPEN_STATES,
    PROVISIONING_KINDS,
    Event,
    Kind,
    Request,
    State,
)
from requests_app.transitions import BY_STANDARD, RULES
from tests.factories import make_user

P, T, Q = State.PENDING_APPROVAL, State.TECH_REVIEW, State.QUEUED
WIP, W = State.IN_PROGRESS, State.WAITING_ON_CUSTOMER

# docs/workflow.md, restated: action -> (roles, never the requester, the requester
# may, kinds (None: all), {from: to}). "standard" routes approve by the request.
CONTRACT = {
    "approve": ({roles.CE_LEADERSHIP}, True, False, None, {P: "standard"}),
    "reject": ({roles.CE_LEADERSHIP}, True, False, None, {P: State.REJECTED}),
    "tech_approve": ({roles.TECH_REVIEW}, True, False, None, {T: Q}),
    "tech_reject": ({roles.TECH_REVIEW}, True, False, None, {T: State.REJECTED}),
    "pick_up": ({roles.DEVOPS}, False, False, None, {Q: WIP}),
    "wait_on_customer": ({roles.DEVOPS}, False, False, None, {WIP: W}),
    "resume_work": ({roles.DEVOPS}, False, False, None, {W: WIP}),
    "complete": ({roles.DEVOPS}, False, False, None, {WIP: State.DONE}),
    "set_target": ({roles.DEVOPS}, False, False, {Kind.FEATURE}, {Q: Q, WIP: WIP, W: W}),
    "assign": ({roles.DEVOPS}, False, False, None, {Q: Q, WIP: WIP, W: W}),
    "cancel": (
        {roles.CE_LEADERSHIP},
        False,
        True,
        None,
        {state: State.CANCELLED for state in OPEN_STATES},
    ),
}
# Access requests: any role files them, Managers (only) approve or reject them, never for tech
# review (approved is queued).
ACCESS_DECIDERS = {roles.MANAGERS}
COMMENT_ROLES = set(roles.ALL_ROLES) - {roles.MANAGERS}
PEOPLE = {
    "ce": (roles.CE,),
    "sales": (roles.SALES,),
    "lead": (roles.CE_LEADERSHIP,),
    "reviewer": (roles.TECH_REVIEW,),
    "devops": (roles.DEVOPS,),
    "devops2": (roles.DEVOPS,),
    "manager": (roles.MANAGERS,),
    "nobody": (),
    # Holds a filing role and an approving one: separation of duties must still hold.
    "celead": (roles.CE, roles.CE_LEADERSHIP),
}
SUPERUSER = "admin"
REQUESTER = "<the requester>"
ACTORS = [*PEOPLE, SUPERUSER, REQUESTER]
ACTIONS = sorted(RULES) + ["comment"]
START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


def expected(person, request, action, body):
    """The contract's answer: an exception class, or the state the request moves to."""
    held = set(PEOPLE.get(person.username, ()))
    superuser = person.is_superuser
    if action == "comment":
        if not (superuser or held & COMMENT_ROLES):
            return workflow.Forbidden
        return workflow.Invalid if not body.strip() else request.state
    if action not in CONTRACT:  # an action the contract above does not know yet
        return None
    allowed, not_requester, requester_may, kinds, moves = CONTRACT[action]
    if action in ("approve", "reject") and request.kind == Kind.ACCESS:
        allowed = ACCESS_DECIDERS
    is_requester = request.requested_by_id == person.pk
    if not (superuser or held & allowed or (requester_may and is_requester)):
        return workflow.Forbidden
    if not_requester and is_requester:
        return workflow.Forbidden
    if kinds and request.kind not in kinds:
        return workflow.Conflict
    if request.state not in moves:
        return workflow.Conflict
    if action == "complete" and request.kind in PROVISIONING_KINDS:
        # Done by hand only when Compute shows the outcome (there is no Compute here).
        return workflow.Conflict
    if action in ("reject", "tech_reject") and not body.strip():
        return workflow.Invalid  # a rejection says why
    target = moves[request.state]
    if target == "standard":
        return Q if request.standard or request.kind == Kind.ACCESS else T
    return target


def table_allows(action, from_state, to_state, standard):
    """Is from -> to a move of `action` in the transitions table?"""
    if action == "comment":
        return from_state == to_state
    rule = RULES.get(action)
    if rule is None or from_state not in rule.moves:
        return False
    target = rule.moves[from_state]
    if target == BY_STANDARD:
        target = Q if standard else T
    return target == to_state


class WorkflowMachine(RuleBasedStateMachine):
    people = None  # username -> user, set by the test before it runs the machine

    filed = Bundle("filed")

    def __init__(self):
        super().__init__()
        # Everything an example writes is rolled back in teardown: the next starts clean.
        self.savepoint = transaction.savepoint()
        self.now = START
        self.count = 0
        self.final = {}  # request id -> the final state it reached

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)

    def tick(self):
        self.now += timedelta(minutes=7)
        return self.now

    # -- filing

    @initialize(target=filed, by=st.sampled_from(["ce", "sales", "admin", "celead"]))
    def file_first(self, by):
        return self.file(by, Kind.FEATURE, ["migration"])

    @precondition(lambda self: self.count < 4)
    @rule(
        target=filed,
        by=st.sampled_from([*PEOPLE, SUPERUSER]),
        kind=st.sampled_from(Kind.values),
        reasons=st.lists(st.sampled_from(["migration", "scale", "security", "other"]), max_size=2),
    )
    def file_another(self, by, kind, reasons):
        return self.file(by, kind, reasons)

    def file(self, username, kind, reasons):
        self.count += 1
        slug = f"sm{self.count}"
        if kind != Kind.CREATE:
            Instance.objects.create(
                slug=slug,
                customer="Machine Co",
                status=InstanceStatus.ACTIVE,
                gcp_project=project_id_for(slug),
                url=url_for(slug),
            )
        person = self.people[username]
        cleaned = {
            "customer": "Machine Co",
            "instance": slug,
            "justification": "",
            "non_standard_reasons": reasons,
        }
        if kind == Kind.ACCESS:
            cleaned.update(person="jo@example.com", scope="vault", category="customer")
        filers = set(roles.ALL_ROLES) if kind == Kind.ACCESS else {roles.CE, roles.SALES}
        may_file = person.is_superuser or set(PEOPLE[username]) & filers
        try:
            request = workflow.file_request(person, kind, cleaned, now=self.tick(), notify=False)
        except workflow.Forbidden:
            assert not may_file, f"{username} may file"
            return multiple()
        assert may_file, f"{username} may not file"
        # Access has no tech review: no reasons make it non-standard.
        assert request.state == P
        assert request.standard == (not reasons or kind == Kind.ACCESS)
        return request.pk

    # -- acting

    @rule(
        request_id=filed,
        who=st.sampled_from(ACTORS),
        action=st.sampled_from(ACTIONS),
        body=st.sampled_from(["Looks fine.", "", "   "]),
    )
    def act(self, request_id, who, action, body):
        self.take(request_id, who, action, body)

    @rule(request_id=filed, data=st.data())
    def move_on(self, request_id, data):
        """Someone whom the contract lets move the request forward does (cancelling aside), so
        that examples reach the later states and not only the first refusals."""
        self.pick(request_id, data, lambda want: not isinstance(want, type), skip="cancel")

    @rule(request_id=filed, data=st.data())
    def out_of_turn(self, request_id, data):
        """Someone whose role may take an action tries it in a state that does not allow it."""
        self.pick(request_id, data, lambda want: want is workflow.Conflict)

    def pick(self, request_id, data, wanted, skip=None):
        request = Request.objects.get(pk=request_id)
        choices = [
            (who, action)
            for who in [*PEOPLE, SUPERUSER]
            for action in CONTRACT
            if action != skip and wanted(expected(self.people[who], request, action, "ok"))
        ]
        if choices:
            action = data.draw(st.sampled_from(sorted({a for _, a in choices})), label="action")
            who = data.draw(st.sampled_from([w for w, a in choices if a == action]), label="who")
            self.take(request_id, who, action, "Moving on.")

    def take(self, request_id, who, action, body):
        before = Request.objects.get(pk=request_id)
        events_before = before.events.count()
        person = before.requested_by if who == REQUESTER else self.people[who]
        want = expected(person, before, action, body)
        now = self.tick()
        try:
            if action == "comment":
                workflow.add_comment(person, request_id, body, now=now, notify=False)
            else:
                workflow.perform(
                    person,
                    request_id,
                    action,
                    comment=body,
                    due_at=now + timedelta(days=3) if action == "set_target" else None,
                    assignee="devops2" if action == "assign" else None,
                    now=now,
                    notify=False,
                )
        except (workflow.Forbidden, workflow.Conflict, workflow.Invalid) as exc:
            after = Request.objects.get(pk=request_id)
            assert after.state == before.state, "a refused action changed the state"
            assert after.events.count() == events_before, "a refused action wrote history"
            if want is not None:
                assert type(exc) is want, f"{who} {action} in {before.state}: {exc!r}"
            return
        after = Request.objects.get(pk=request_id)
        if want is not None:
            assert after.state == want, f"{who} {action} in {before.state}: got {after.state}"
        assert table_allows(action, before.state, after.state, before.standard)
        if action != "comment":
            assert before.state not in FINAL_STATES
        last = after.events.order_by("at", "pk").last()
        assert (last.action, last.by_id, last.at) == (action, person.pk, now)
        assert (last.from_state, last.to_state) == (before.state, after.state)

    # -- invariants

    @invariant()
    def states_and_history_agree(self):
        requests = {r.pk: r for r in Request.objects.all()}
        chains = {pk: [] for pk in requests}
        for event in Event.objects.filter(request_id__in=requests).order_by("at", "pk"):
            chains[event.request_id].append(event)
        for pk, request in requests.items():
            assert request.state in State.values
            if pk in self.final:
                assert request.state == self.final[pk], "a final state changed"
            if request.state in FINAL_STATES:
                self.final[pk] = request.state
            events = chains[pk]
            first = events[0]
            assert (first.action, first.from_state, first.to_state) == ("submit", "", P)
            assert first.by_id == request.requested_by_id
            state = first.to_state
            for event in events[1:]:
                assert event.from_state == state, f"history breaks at {event}"
                assert table_allows(
                    event.action, event.from_state, event.to_state, request.standard
                ), f"{event} is not in the table"
                state = event.to_state
            assert state == request.state, "history does not replay to the current state"


@pytest.mark.django_db
def test_the_workflow_never_leaves_the_table(users):
    people = {name: user for name, user in users.items()}
    people["nobody"] = make_user("nobody")
    people["celead"] = make_user("celead", roles.CE, roles.CE_LEADERSHIP)
    WorkflowMachine.people = people
    try:
        run_state_machine_as_test(
            WorkflowMachine,
            settings=hypothesis.settings(
                max_examples=100,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        WorkflowMachine.people = None
