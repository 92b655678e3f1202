"""How the portal tells what happened to a request, in words people read: the history on the
request page and the mail its events send ("lead rejected the request: <reason>"), with the
same verbs; state labels, never state names. A provisioning run's steps fold into one entry.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Max
from django.utils import timezone

from provisioning.models import Run, RunState
from requests_app.models import Event, State
from requests_app.transitions import RUN_ACTIONS

# action -> (the verb in the history, the same as a sentence about the request, for mail)
VERBS: dict[str, tuple[str, str]] = {
    "submit": ("filed the request", "filed the request"),
    "approve": ("approved", "approved the request"),
    "reject": ("rejected", "rejected the request"),
    "tech_approve": ("approved in tech review", "approved the request in tech review"),
    "tech_reject": ("rejected in tech review", "rejected the request in tech review"),
    "pick_up": ("picked up", "picked up the request"),
    "wait_on_customer": ("set to wait on the customer", "set the request to wait on the customer"),
    "resume_work": ("resumed work", "resumed work on the request"),
    "complete": ("marked done", "marked the request done"),
    "set_target": ("set the target date", "set the request's target date"),
    "plan": ("queued a plan", "queued a plan"),
    "confirm": ("confirmed the plan", "confirmed the plan"),
    "discard": ("discarded the plan", "discarded the plan"),
    "retry": ("retried the run", "retried the run"),
    "cancel": ("cancelled", "cancelled the request"),
    "comment": ("commented", "commented"),
    "edit": ("edited the request", "edited the request"),
}

# A run's state as the queue, the board and the history say it.
RUN_WORDS: dict[str, str] = {
    RunState.QUEUED: "run queued",
    RunState.PLANNING: "planning",
    RunState.PLANNED: "plan waiting for confirm",
    RunState.APPLYING: "applying",
    RunState.APPLIED: "applied",
    RunState.ERRORED: "run errored",
    RunState.DISCARDED: "plan discarded",
}

PORTAL = "the portal"  # who acted when nobody did: a run's worker, the portal's own jobs


def who(event: Event) -> str:
    return event.by.get_username() if event.by else PORTAL


def state_label(state: str) -> str:
    return State(state).label if state in State.values else state


def _moment(text: str | None) -> str:
    if not text:
        return ""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return text
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M %Z")


def verb(event: Event, *, sentence: bool = False) -> str:
    """What `who(event)` did: "approved", "picked up", "assigned devops2", ... With
    `sentence`, the words a message about the request uses ("approved the request")."""
    data = event.data or {}
    if event.action == "assign":
        holder, previous = data.get("assignee"), data.get("previous")
        if holder is None:
            return f"unassigned {previous}" if previous else "left the request to nobody"
        if event.by is not None and holder == event.by.get_username():
            return "assigned themselves"
        return f"assigned {holder}"
    if event.action == "set_target" and data.get("due_at"):
        return f"set the target date to {_moment(data['due_at'])}"
    if event.action.startswith("run_"):
        return _run_step(event)
    if event.action == "complete" and data.get("granted"):
        return "granted the access"  # the comment says what, to whom, until when
    words = VERBS.get(event.action)
    if words is None:
        return event.action.replace("_", " ")
    return words[1] if sentence else words[0]


def sentence(event: Event) -> str:
    """One line about an event for a message: "lead rejected the request: <reason>"."""
    name = who(event) if event.by else PORTAL.capitalize()
    line = f"{name} {verb(event, sentence=True)}"
    comment = event.comment.strip()
    return f"{line}: {comment}" if comment else f"{line}."


# -- the history of the request page ------------------------------------------------------------


@dataclass
class Step:
    """One step of a run's entry."""

    at: datetime
    text: str
    comment: str = ""
    failed: bool = False


@dataclass
class Entry:
    """One line of the history: an event, a comment, or a whole provisioning run."""

    kind: str  # "event", "comment" or "run"
    at: datetime
    who: str
    verb: str
    action: str = ""
    comment: str = ""
    change: tuple[str, str] | None = None  # (from, to) state labels when the state changed
    run_id: int | None = None
    summary: str = ""  # a run's milestones: "planned, confirmed by devops2, applied"
    state: str = ""  # a run's state now
    steps: list[Step] = field(default_factory=list)
    milestones: list[str] = field(default_factory=list)


def _run_step(event: Event) -> str:
    by = f" by {event.by.get_username()}" if event.by else ""
    if event.action == "run_queued":
        return f"queued{by}"
    if event.action == "run_planned":
        return "planned"
    if event.action == "run_confirmed":
        return f"confirmed{by}"
    if event.action == "run_discarded":
        return f"discarded{by}"
    if event.action == "run_errored":
        return "errored"
    if event.action == "run_step":
        return event.comment or "a step"
    return event.action.removeprefix("run_").replace("_", " ")


def _milestone(event: Event) -> str | None:
    """What a run's summary says of this step (None: only its details list it)."""
    if event.action in ("run_planned", "run_confirmed", "run_discarded", "run_errored"):
        return _run_step(event)
    return None


def _run_of(events: list[Event], index: int) -> int | None:
    """The run an event belongs to: a run step carries it; a person's plan, confirm, discard or
    retry is written in the same transaction as (right before) the run step it caused."""
    event = events[index]
    if event.action.startswith("run_"):
        run = (event.data or {}).get("run")
        return run if isinstance(run, int) else None
    if event.action in RUN_ACTIONS and index + 1 < len(events):
        after = events[index + 1]
        if after.action.startswith("run_") and after.at == event.at:
            return _run_of(events, index + 1)
    return None


def entries(events: Iterable[Event], runs: Mapping[int, Run] | None = None) -> list[Entry]:
    """The history of a request, oldest first: one entry per event, but one per run for the
    steps of a provisioning run (placed where the run began), which opens to its steps. `runs`
    (by id) tell how each run stands now."""
    events = list(events)
    runs = runs or {}
    found: list[Entry] = []
    by_run: dict[int, Entry] = {}
    typed = ""  # what a person wrote with the plan/confirm/... that the next step records
    for index, event in enumerate(events):
        run_id = _run_of(events, index)
        if run_id is not None:
            entry = by_run.get(run_id)
            if entry is None:
                entry = Entry("run", event.at, who(event), f"Run #{run_id}", run_id=run_id)
                by_run[run_id] = entry
                found.append(entry)
            if not event.action.startswith("run_"):
                # The person's plan, confirm, ...: the run's own step right after says it.
                typed = event.comment.strip()
                continue
            text = _run_step(event)
            comment = "" if event.action == "run_step" else event.comment
            comment = "\n\n".join(part for part in (typed, comment) if part)
            typed = ""
            failed = event.action == "run_errored" or text.endswith(": failed")
            entry.steps.append(Step(event.at, text, comment, failed))
            milestone = _milestone(event)
            if milestone:
                entry.milestones.append(milestone)
            continue
        run = (event.data or {}).get("run")
        if event.action == "complete" and run in by_run and run not in runs:
            by_run[run].milestones.append(RUN_WORDS[RunState.APPLIED])
        change = None
        if event.from_state != event.to_state:
            before = state_label(event.from_state) if event.from_state else ""
            change = (before, state_label(event.to_state))
        found.append(
            Entry(
                "comment" if event.action == "comment" else "event",
                event.at,
                who(event),
                verb(event),
                action=event.action,
                comment=event.comment,
                change=change,
            )
        )
    for run_id, entry in by_run.items():
        _summarise(entry, runs.get(run_id))
    return found


def _summarise(entry: Entry, run: Run | None) -> None:
    """A run's summary: its milestones, and where it stands now when it is still working or
    has applied (applying leaves no event of its own)."""
    milestones = list(entry.milestones)
    if run is not None:
        entry.state = run.state
        if run.state in (RunState.PLANNING, RunState.APPLYING, RunState.APPLIED):
            milestones.append(RUN_WORDS[run.state])
    if not milestones and entry.steps:
        milestones.append(entry.steps[0].text)  # "queued by devops"
    entry.summary = ", ".join(milestones)


@dataclass(frozen=True)
class RunStatus:
    """How a request's latest run stands: its state, and that in words."""

    state: str
    words: str

    def __str__(self) -> str:
        return self.words


def run_statuses(request_ids: Iterable[int]) -> dict[int, RunStatus]:
    """How the latest run of each request stands ("plan waiting for confirm", "run errored",
    "applying"), in one query however many requests; none for a request without runs."""
    ids = list(request_ids)
    if not ids:
        return {}
    # The newest run of each request is the one with the highest id (rows are made in order).
    # Not DISTINCT ON: make run's embedded SQLite has no such thing.
    newest = (
        Run.objects.filter(request_id__in=ids)
        .order_by()
        .values("request_id")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    latest = Run.objects.filter(pk__in=newest).values_list("request_id", "state")
    return {
        pk: RunStatus(state, RUN_WORDS.get(state, state)) for pk, state in latest if pk is not None
    }
