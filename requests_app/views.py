"""Pages. No business rules here: they validate with the forms and act through the workflow."""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from portal import roles
from provisioning import instances, plans, runs
from provisioning.models import (
    MACHINE_TYPES,
    NETWORK_USD,
    STORAGE_USD,
    WEEKDAYS,
    Category,
    Instance,
    InstanceStatus,
    Run,
)
from provisioning.verify import (
    VERIFIABLE,
    ComputeUnavailable,
    compute_client,
    enqueue_verification,
    observe_instance,
    status_from,
)
from requests_app import access, history, loading, search, validation, workflow
from requests_app import rows as request_rows
from requests_app.counting import CountedPaginator
from requests_app.forms import FORMS, ActionForm, CommentForm
from requests_app.models import (
    OPEN_STATES,
    PROVISIONING_KINDS,
    AccessScope,
    Event,
    Kind,
    Notification,
    Request,
    State,
    open_requests_of_instance,
)
from requests_app.serializers import (
    AccessFiltersSerializer,
    RequestFiltersSerializer,
    check_json,
    error_messages,
)
from requests_app.sla import policies, status
from requests_app.transitions import RULES, Rule

if TYPE_CHECKING:
    from portal.roles import AnyUser

log = logging.getLogger(__name__)

KIND_HELP: dict[str, str] = {
    Kind.CREATE: "A new instance for a new customer or prospect.",
    Kind.SUSPEND: "Pause an instance for a customer who intends to come back within months.",
    Kind.RESUME: "Bring a suspended instance back from its snapshot.",
    Kind.TEARDOWN: "Delete an instance and its data for good.",
    Kind.UPGRADE: "Move an instance to a newer release (within a week of the release).",
    Kind.ENABLE_EXECUTORS: "Turn on executors for an instance.",
    Kind.FEATURE: "Anything else the customer needs from DevOps.",
    Kind.ACCESS: "Access for a person to the GCP projects or Vault secrets of one instance, or "
    "of every customer or internal instance; a manager approves it.",
}


def with_timers(rows: Iterable[Request]) -> list[Request]:
    """Attach each request's SLA timers (computed once per row; the calendar is cached)."""
    now = timezone.now()
    calendar, found = policies.load()
    zone = timezone.get_current_timezone()
    rows = list(rows)
    for row in rows:
        row.sla, row.working = status.sla_and_working(row, now, calendar, found, zone)
    return rows


def require_reader(user: "AnyUser") -> None:
    if not workflow.can_read(user):
        raise PermissionDenied("Your account has no role in the portal yet; ask an administrator.")


def get_request_for_user(request: HttpRequest, pk: int) -> Request:
    require_reader(request.user)
    events = Event.objects.select_related("by").order_by("at", "id")
    queryset = Request.objects.with_related().prefetch_related(Prefetch("events", queryset=events))
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"There is no request #{pk}.")
    return found


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    counts: dict[str, int] = {}
    if workflow.can_read(user):
        # Every count is of open requests: read through the state index, not the whole table.
        counts = Request.objects.filter(state__in=OPEN_STATES).aggregate(
            pending_approval=Count("pk", filter=Q(state=State.PENDING_APPROVAL)),
            tech_review=Count("pk", filter=Q(state=State.TECH_REVIEW)),
            queued=Count("pk", filter=Q(state=State.QUEUED)),
            in_progress=Count(
                "pk", filter=Q(state__in=[State.IN_PROGRESS, State.WAITING_ON_CUSTOMER])
            ),
            mine_open=Count("pk", filter=Q(requested_by=user, state__in=OPEN_STATES)),
            assigned_to_me=Count("pk", filter=Q(assignee=user, state__in=OPEN_STATES)),
        )
    return render(request, "portal/home.html", {"counts": counts})


# The filters the list pages take from their query string: the API's (docs/api.md), validated
# by the same serializer and applied by the same function, so a filtered list's URL can be
# bookmarked and means what it means in the API.
LIST_FILTERS = ("q", "customer", "assignee", "instance", "state", "kind", "category")


def request_list(request: HttpRequest, mine: bool = False) -> HttpResponse:
    require_reader(request.user)
    # Only what the rows show and the timers read (request_rows.ROW_COLUMNS).
    queryset: QuerySet[Request] = (
        Request.objects.select_related("instance", "assignee", "requested_by")
        .only(*request_rows.ROW_COLUMNS, "requested_by__username")
        .order_by("-created_at", "-id")
    )
    if mine:
        queryset = queryset.filter(requested_by=request.user.pk)
    # The form sends every field; an empty one is no filter (the API: `state=` is a 400).
    given = {name: value for name in LIST_FILTERS if (value := request.GET.get(name, "").strip())}
    errors: dict[str, list[str]] = {}
    try:
        params = check_json(RequestFiltersSerializer, given)
    except ValidationError as exc:
        errors, params = error_messages(exc.detail), {}
        queryset = queryset.none()
    queryset = search.apply_filters(queryset, params)
    page = CountedPaginator(queryset, 50).get_page(request.GET.get("page"))
    page.object_list = with_timers(page.object_list)
    # What the form shows: as typed, but a valid state or kind as its value (the select's).
    shown: dict[str, str] = {**given}
    shown.update({name: params[name] for name in ("state", "kind", "category") if name in params})
    kept = QueryDict(mutable=True)
    kept.update(given)
    return render(
        request,
        "requests_app/request_list.html",
        {
            "page": page,
            "mine": mine,
            "states": State.choices,
            "kinds": Kind.choices,
            "categories": Category.choices,
            "filters": shown,
            "filter_errors": errors,
            # The pager's links: the filters and the page, nothing else of the query string.
            "filter_query": kept,
            "by_relevance": search.by_relevance(queryset),
            "title": "My requests" if mine else "All requests",
        },
        status=400 if errors else 200,
    )


def my_requests(request: HttpRequest) -> HttpResponse:
    return request_list(request, mine=True)


def new_request_choose(request: HttpRequest) -> HttpResponse:
    if not workflow.can_file_any(request.user):
        raise PermissionDenied("Your role may not file requests.")
    kinds = [
        (value, label, KIND_HELP[value])
        for value, label in Kind.choices
        if workflow.can_file(request.user, value)
    ]
    return render(request, "requests_app/new_request_choose.html", {"kinds": kinds})


def new_request(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in FORMS:
        raise Http404("No such request kind.")
    if not workflow.can_file(request.user, kind):
        raise PermissionDenied(workflow.file_refusal(kind))
    form_class = FORMS[kind]
    if request.method == "POST":
        form = form_class(data=request.POST)
        if form.is_valid():
            try:
                created = workflow.file_request(request.user, kind, form.cleaned_data)
            except workflow.WorkflowError as exc:
                for field, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                approvers = "a manager" if kind == Kind.ACCESS else "CE Leadership"
                messages.success(
                    request, f"Request #{created.pk} filed; {approvers} will review it."
                )
                return redirect("request_detail", pk=created.pk)
    else:
        initial = {"instance": request.GET.get("instance", "")}
        named = instances.live(initial["instance"]) if initial["instance"] else None
        if kind == Kind.ACCESS and named is not None:
            initial["category"] = named.category
        form = form_class(initial=initial)
    live = Instance.objects.live().order_by("slug")
    context = {
        "form": form,
        "kind": kind,
        "kind_label": Kind(kind).label,
        "kind_help": KIND_HELP[kind],
        "instances": live,
        "sizing_json": json.dumps(
            {
                "sizing": validation.SIZING,
                "max_users": validation.SCALE_LIMIT_USERS,
                "max_repositories": validation.SCALE_LIMIT_REPOSITORIES,
                # provisioning.models.monthly_cost's numbers, for the live estimate.
                "machine_usd": {name: spec["monthly_usd"] for name, spec in MACHINE_TYPES.items()},
                "storage_usd": STORAGE_USD,
                "network_usd": NETWORK_USD,
            }
        ),
        "recommended": getattr(form, "recommended_machine_type", None),
    }
    return render(request, "requests_app/new_request.html", context, status=200)


def edit_request(request: HttpRequest, pk: int) -> HttpResponse:
    """The requester changes their request until it is approved (each edit in the history)."""
    target = get_request_for_user(request, pk)
    if target.requested_by_id != request.user.pk:
        raise PermissionDenied("Only the person who filed a request may edit it.")
    if target.state != State.PENDING_APPROVAL:
        messages.error(request, "This request was approved or has ended: it cannot be edited.")
        return redirect("request_detail", pk=target.pk)
    form_class = FORMS[target.kind]
    if request.method == "POST":
        form = form_class(data=request.POST, editing=target)
        if form.is_valid():
            try:
                workflow.edit_request(
                    request.user,
                    target.pk,
                    form.cleaned_data,
                    version=_int_or_none(request.POST.get("version")),
                )
            except workflow.WorkflowError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, "Your changes are saved; the history lists them.")
            return redirect("request_detail", pk=target.pk)
    else:
        initial = {
            name: getattr(target, name)
            for name in form_class.base_fields
            if hasattr(target, name) and name not in ("instance",)
        }
        form = form_class(initial=initial, editing=target)
    return render(
        request,
        "requests_app/edit_request.html",
        {"form": form, "target": target, "kind_label": Kind(target.kind).label},
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    target = with_timers([get_request_for_user(request, pk)])[0]
    allowed = workflow.allowed_actions(request.user, target)
    provisioning = target.kind in PROVISIONING_KINDS
    runs_part = runs_context(target, request.user) if provisioning else {}
    events = list(target.events.all())
    context = {
        "req": target,
        "events": events,
        "history": history.entries(events, {run.pk: run for run in runs_part.get("runs", [])}),
        "can_comment": workflow.can_comment(request.user),
        "comment_form": CommentForm(),
        # What the person typed before an action failed and came back here (request_action).
        "action_form": ActionForm(initial=request.session.pop(draft_key(pk), None)),
        "is_requester": target.requested_by_id == request.user.pk,
        "provisioning": provisioning,
        "access_default_days": settings.ACCESS_DEFAULT_DAYS,
        **holder_context(request.user, target, allowed),
        **runs_part,
        **confirm_context(target),
    }
    return render(request, "requests_app/request_detail.html", context)


def holder_context(user: "AnyUser", target: Request, allowed: list[str]) -> dict[str, Any]:
    """Who holds the request and what the page leads with. Any DevOps member may act on any
    request, but the page leads with the holder's buttons: to another member it says who holds
    the request and offers "Assign to me" first, the other actions under it, less prominent."""
    buttons = [RULES[action] for action in allowed if action != "assign"]
    if "assign" not in allowed:
        return {"buttons": buttons, "demoted": False}
    members = workflow.devops_members()
    member = any(m.pk == user.pk for m in members)
    holds = target.assignee_id is not None and target.assignee_id == user.pk
    # A queued request nobody holds: Pick up (which assigns) leads, as it always did.
    unclaimed = target.assignee_id is None and "pick_up" in allowed
    offer = member and not holds and not unclaimed
    return {
        "buttons": buttons,
        "can_assign": True,
        "devops_members": members,
        "you_hold": holds,
        "offer_assign_to_me": offer,
        "demoted": offer,
    }


def runs_context(target: Request, user: "AnyUser") -> dict[str, Any]:
    found = runs.runs_for(target.pk)
    return {
        "req": target,
        "runs": found,
        # Working runs (not one waiting for confirm): the page polls until they settle.
        "any_active": any(run.state in ("queued", "planning", "applying") for run in found),
        "can_plan": "plan" in workflow.allowed_actions(user, target),
    }


def confirm_context(target: Request) -> dict[str, Any]:
    """What confirming the waiting plan destroys, and whether a second person must confirm it."""
    planned = runs.latest_run(target.pk) if target.kind in PROVISIONING_KINDS else None
    if planned is None or planned.state != "planned":
        return {}
    return {
        "destroys": planned.destroyed(),
        "second_person": planned.needs_second_person(),
        "planner": planned.created_by,
    }


def request_runs(request: HttpRequest, pk: int) -> HttpResponse:
    """The runs panel alone, polled by the request page while a run is active."""
    target = get_request_for_user(request, pk)
    return render(request, "requests_app/_runs.html", runs_context(target, request.user))


# -- actions: what the pages say ------------------------------------------------------------------


@dataclass(frozen=True)
class ActionWords:
    """How the pages speak of an action: people read these, so no action or state names."""

    done: str  # to the person who took it
    did: str  # of someone who took it: "devops picked this up 3 seconds ago."
    may: str  # of the roles it needs: "Only DevOps may pick up requests."
    done_by_state: dict[str, str] = field(default_factory=dict)  # `done`, by the state reached


ACTION_WORDS: dict[str, ActionWords] = {
    "approve": ActionWords(
        "Approved: queued for DevOps.",
        "approved this",
        "approve requests",
        {State.TECH_REVIEW: "Approved: sent to Tech Review."},
    ),
    "reject": ActionWords(
        "Rejected: the requester is told why.", "rejected this", "reject requests"
    ),
    "tech_approve": ActionWords(
        "Approved in tech review: queued for DevOps.",
        "approved this in tech review",
        "approve in tech review",
    ),
    "tech_reject": ActionWords(
        "Rejected in tech review: the requester is told why.",
        "rejected this in tech review",
        "reject in tech review",
    ),
    "pick_up": ActionWords("Picked up: assigned to you.", "picked this up", "pick up requests"),
    "wait_on_customer": ActionWords(
        "Waiting on the customer: the resolution clock is paused.",
        "set this to wait on the customer",
        "set requests to wait on the customer",
    ),
    "resume_work": ActionWords(
        "Work resumed: the resolution clock runs again.",
        "resumed work on this",
        "resume work on requests",
    ),
    "complete": ActionWords(
        "Marked done: the requester is told.", "marked this done", "mark requests done"
    ),
    "assign": ActionWords(
        "Assigned: the request has a new holder.", "changed who holds this", "assign requests"
    ),
    "set_target": ActionWords(
        "Target date set: the resolution clock counts down to it.",
        "set the target date",
        "set target dates",
    ),
    "plan": ActionWords("Plan queued: a worker will plan the run.", "queued a plan", "plan runs"),
    "confirm": ActionWords(
        "Plan confirmed: a worker will apply it.", "confirmed the plan", "confirm plans"
    ),
    "discard": ActionWords(
        "Plan discarded: nothing was changed.", "discarded the plan", "discard plans"
    ),
    "retry": ActionWords(
        "Retry queued: a worker will plan the run again.", "retried the run", "retry runs"
    ),
    "cancel": ActionWords(
        "Cancelled: nothing more will happen to this request.",
        "cancelled this",
        "cancel requests",
    ),
}
FILED = "filed this"  # the first event of every request, `submit`


def draft_key(pk: int) -> str:
    return f"action-draft-{pk}"


def done_message(action: str, reached: str) -> str:
    words = ACTION_WORDS[action]
    return words.done_by_state.get(reached, words.done)


def forbidden_message(user: "AnyUser", rule: Rule, target: Request, error: str) -> str:
    """Which role the action needs, when the role is what is missing; otherwise the workflow's
    own words (the requester rule, the second person of a destructive confirm)."""
    if user.is_active and workflow.role_allows(user, rule, target):
        return error
    who = [*rule.roles_for(target.kind), *(["the requester"] if rule.requester_may else [])]
    return f"Only {' or '.join(who)} may {ACTION_WORDS[rule.action].may}."


def changed_message(user: "AnyUser", target: Request) -> str:
    """Who changed the request last and when, from its history: the reason an action that was
    possible on the page the person saw is not possible any more."""
    latest = (
        Event.objects.filter(request=target, action__in=[*ACTION_WORDS, "submit"])
        .select_related("by")
        .order_by("-id")  # the last one written: the change this action lost to
        .first()
    )
    if latest is None:
        return "Someone changed this request first; here it is as it is now."
    if latest.by_id is not None and latest.by_id == user.pk:
        who = "You"
    else:
        who = latest.by.username if latest.by else "The portal"
    did = ACTION_WORDS[latest.action].did if latest.action in ACTION_WORDS else FILED
    return f"{who} {did} {ago(latest.at)}."


def ago(at: datetime) -> str:
    """When, in words: "3 seconds ago", "2 hours ago", and "just now" (not a bare "now")."""
    if timezone.now() - at < timedelta(seconds=1):
        return "just now"
    # naturaltime keeps its number and unit together with no-break spaces; a message is text.
    return naturaltime(at).replace("\xa0", " ")


def conflict_message(user: "AnyUser", rule: Rule, seen: Request, error: str) -> str:
    """Why an action is not possible now, against the request as it is now (`seen`: as the
    page read it before acting)."""
    current = Request.objects.only("state", "version", "kind").get(pk=seen.pk)
    if current.kind not in rule.kinds:
        return f"{rule.label} does not apply to {current.get_kind_display().lower()} requests."
    if current.state not in rule.moves or current.version != seen.version:
        return changed_message(user, seen)
    return error  # the runs' own conflicts ("There is no plan waiting to be confirmed.")


@require_POST
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """POST, then redirect to the request page whatever happened (a reload never posts again),
    with a message that says what happened, or why not, in words."""
    if action not in RULES:
        raise Http404("There is no such action.")
    target = get_request_for_user(request, pk)
    rule = RULES[action]
    form = ActionForm(data=request.POST)
    try:
        if not form.is_valid():
            errors = {name: [str(e) for e in found] for name, found in form.errors.items()}
            raise workflow.Invalid("Check the form.", errors)
        done = workflow.perform(
            request.user,
            target.pk,
            action,
            comment=form.cleaned_data["comment"],
            due_at=form.cleaned_data["due_at"],
            confirm=form.cleaned_data["confirm"],
            assignee=form.cleaned_data["assignee"],
        )
    except workflow.Forbidden as exc:
        raise PermissionDenied(forbidden_message(request.user, rule, target, exc.message)) from None
    except workflow.Conflict as exc:
        messages.error(request, conflict_message(request.user, rule, target, exc.message))
    except workflow.Invalid as exc:
        found = [message for errors in exc.errors.values() for message in errors]
        messages.error(request, " ".join(dict.fromkeys(found)) or exc.message)
        # Keep what was typed for the page that comes back (the slug typed is not kept).
        request.session[draft_key(pk)] = {
            "comment": request.POST.get("comment", ""),
            "due_at": request.POST.get("due_at", ""),
        }
    else:
        if action == "assign":
            messages.success(request, assigned_message(request.user, done))
        else:
            messages.success(request, done_message(action, done.state))
    return redirect("request_detail", pk=pk)


def assigned_message(user: "AnyUser", done: Request) -> str:
    if done.assignee is None:
        return "Nobody holds this request now."
    if done.assignee.pk == user.pk:
        return "Assigned to you: you hold this request now."
    return f"Assigned to {done.assignee.get_username()}: they hold this request now."


@require_POST
def request_comment(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_request_for_user(request, pk)
    try:
        workflow.add_comment(request.user, target.pk, request.POST.get("body", ""))
    except workflow.Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except workflow.WorkflowError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Comment added.")
    return redirect("request_detail", pk=pk)


def approvals(request: HttpRequest) -> HttpResponse:
    """Each approver's inbox: what waits for their decision, the oldest first. Access requests
    wait for Managers (their one decision), everything else for CE Leadership, then (when
    non-standard) Tech Review."""
    user = request.user
    waiting = Request.objects.with_related().order_by("created_at", "id")
    sections: list[tuple[str, str, QuerySet[Request]]] = []
    if roles.has_role(user, roles.CE_LEADERSHIP):
        sections.append(
            (
                "CE Leadership approval",
                "approve",
                waiting.filter(state=State.PENDING_APPROVAL).exclude(kind=Kind.ACCESS),
            )
        )
    if roles.has_role(user, roles.TECH_REVIEW):
        sections.append(("Tech review", "tech_approve", waiting.filter(state=State.TECH_REVIEW)))
    if roles.has_role(user, roles.MANAGERS):
        sections.append(
            (
                "Access requests (manager approval)",
                "approve",
                waiting.filter(state=State.PENDING_APPROVAL, kind=Kind.ACCESS),
            )
        )
    if not sections:
        raise PermissionDenied(
            "The approvals inbox is for CE Leadership, Tech Review and Managers."
        )
    inbox = [
        {"title": title, "action": action, "requests": with_timers(rows)}
        for title, action, rows in sections
    ]
    return render(request, "requests_app/approvals.html", {"inbox": inbox})


# Rows the queue shows per section: the most urgent; a link lists them all.
QUEUE_ROWS = 25
QUEUE_SECTIONS = [
    (State.QUEUED, "Queued", "Oldest due first."),
    (State.IN_PROGRESS, "In progress", ""),
    (State.WAITING_ON_CUSTOMER, "Waiting on customer", "The resolution clock is paused."),
]


def queue_section(state: str) -> "QuerySet[Request, tuple[Any, ...]]":
    """The first QUEUE_ROWS rows of ROW_COLUMNS of a queue section."""
    select = loading.shape(tuple(request_rows.ROW_COLUMNS)).select
    # Oldest due first: what breaches soonest is at the top.
    by_due = (
        F("resolution_due_at").asc(nulls_last=True),
        F("response_due_at").asc(nulls_last=True),
        "created_at",
        "id",
    )
    return Request.objects.filter(state=state).order_by(*by_due)[:QUEUE_ROWS].values_list(*select)


def queue_sections() -> "QuerySet[Request, tuple[Any, ...]]":
    """Every queue section's rows, one section after the other (as PostgreSQL appends them;
    each keeps its order): one query, the same on every visit."""
    first, *rest = (queue_section(state) for state, _, _ in QUEUE_SECTIONS)
    return first.union(*rest, all=True)


QUEUE_SECTION_ROWS = loading.CompiledOnce(queue_sections)
# (state, count) of each queue section's state: one count a state, grouped (cheaper to build
# than a filtered Count a section).
QUEUE_COUNTS = loading.CompiledOnce(
    lambda: (
        Request.objects.filter(state__in=[state for state, _, _ in QUEUE_SECTIONS])
        .order_by()
        .values_list("state")
        .annotate(count=Count("pk"))
    )
)


def devops_queue(request: HttpRequest) -> HttpResponse:
    """The open work of DevOps, the most urgent first, each with how its run stands and who
    holds it. A fixed number of queries however many requests are open: each section shows its
    first QUEUE_ROWS and says how many more there are, with a link to the filtered list."""
    if not roles.has_role(request.user, roles.DEVOPS):
        raise PermissionDenied("The queue is for DevOps.")
    shown_states = [state for state, _, _ in QUEUE_SECTIONS]
    counts: dict[str, int] = dict.fromkeys(shown_states, 0)
    counts.update({state: count for state, count in QUEUE_COUNTS.rows(using=Request.objects.db)})
    # Only what the rows show and the timers read (a third of the page's time went to loading
    # the rest), as rows of values made into requests (requests_app/loading.py); test_queue
    # checks that no row asks for a column left out.
    shape = loading.shape(tuple(request_rows.ROW_COLUMNS))
    state_at = shape.select.index("state")
    found: dict[str, list[Any]] = {state: [] for state in shown_states}
    db = Request.objects.db
    if connections[db].features.supports_slicing_ordering_in_compound:
        loaded: Iterable[Any] = QUEUE_SECTION_ROWS.rows(using=db)
    else:  # SQLite (`make run`'s): a query a section
        loaded = (row for state in shown_states for row in queue_section(state))
    for row in loaded:
        found[row[state_at]].append(row)
    sections: list[dict[str, Any]] = []
    for state, title, note in QUEUE_SECTIONS:
        rows = with_timers(shape.requests(found[state], db))
        sections.append(
            {
                "state": state,
                "title": title,
                "note": note,
                "rows": rows,
                "count": counts[state],
                "more": counts[state] - len(rows),
                "pick_up": state == State.QUEUED,
            }
        )
    statuses = history.run_statuses(row.pk for section in sections for row in section["rows"])
    csrf = request_rows.csrf_input(request)
    now = timezone.now()
    for section in sections:
        for row in section["rows"]:
            row.run_status = statuses.get(row.pk)
        section["rows_html"] = request_rows.queue_rows(
            section["rows"], pick_up=section["pick_up"], user_pk=request.user.pk, csrf=csrf, now=now
        )
    context = {
        "sections": sections,
        # Mail and Slack that could not be sent after every attempt: someone has to tell people.
        # Only the columns the table shows: a select_related of the whole request and instance
        # cost more to write than the query takes, even with no row to show.
        "failed_notifications": Notification.objects.filter(status=Notification.Status.FAILED)
        .select_related("instance")
        .only("created_at", "request_id", "channel", "subject", "last_error", "instance__slug")
        .order_by("-created_at")[:20],
    }
    return render(request, "requests_app/queue.html", context)


# Instances per page of the instance list (the fleet page pages as many).
INSTANCE_ROWS = 100


def instance_list(request: HttpRequest) -> HttpResponse:
    require_reader(request.user)
    rows = Instance.objects.annotate(open_requests=open_requests_of_instance()).order_by(
        "slug", "-created_at"
    )
    page = Paginator(rows, INSTANCE_ROWS).get_page(request.GET.get("page"))
    return render(request, "requests_app/instance_list.html", {"instances": page, "page": page})


# The requests an instance page offers to file, in this order, by what the instance's status
# allows (each kind's form says which statuses it takes).
INSTANCE_REQUESTS = {
    Kind.SUSPEND: "Suspend",
    Kind.RESUME: "Resume",
    Kind.UPGRADE: "Upgrade",
    Kind.ENABLE_EXECUTORS: "Enable executors",
    Kind.TEARDOWN: "Tear down",
}
GCP_CONSOLE = "https://console.cloud.google.com/home/dashboard?project={project}"
GCP_LOGS = "https://console.cloud.google.com/logs/query?project={project}"


def request_links(instance: Instance, user: "AnyUser") -> list[tuple[str, str, str]]:
    """(kind, label, URL of the form prefilled with the instance) of the requests its status
    allows and this person may file."""
    found: list[tuple[str, str, str]] = []
    for kind, label in INSTANCE_REQUESTS.items():
        if not workflow.can_file(user, kind):
            continue
        allowed = FORMS[kind].allowed_statuses
        if allowed is not None and instance.status not in allowed:
            continue
        if kind == Kind.ENABLE_EXECUTORS and instance.executors_enabled:
            continue
        query = urlencode({"instance": instance.slug})
        found.append((kind, label, f"{reverse('new_request', args=[kind])}?{query}"))
    return found


def instance_detail(request: HttpRequest, slug: str) -> HttpResponse:
    require_reader(request.user)
    instance = instances.latest(slug)
    if instance is None:
        raise Http404("No such instance.")
    related = with_timers(
        Request.objects.with_related()
        .filter(Q(instance=instance) | Q(instance__isnull=True, instance_slug=slug))
        .order_by("-created_at", "-id")
    )
    live = instance.status != InstanceStatus.TORN_DOWN
    project = quote(instance.gcp_project)
    links = request_links(instance, request.user) if live else []
    return render(
        request,
        "requests_app/instance_detail.html",
        {
            "instance": instance,
            "live": live,
            "requests": related,
            "runs": list(
                Run.objects.filter(instance=instance)
                .select_related("created_by", "confirmed_by")
                .defer("plan_binary", "plan_text", "plan_json", "log", "params", "steps")
                .order_by("-created_at", "-id")
            ),
            "outputs": plans.outputs_shown((instance.outputs or {}).get("terraform"))
            if live
            else [],
            "console_url": GCP_CONSOLE.format(project=project) if live else "",
            "logs_url": GCP_LOGS.format(project=project) if live else "",
            "can_file": bool(links),
            "request_links": links,
            # The form refuses a second provisioning request while one is open: say so instead.
            "open_request": next(
                (r for r in related if r.is_open and r.kind in PROVISIONING_KINDS), None
            ),
            "can_verify": roles.has_role(request.user, roles.DEVOPS)
            and instance.status in VERIFIABLE,
            "weekdays": WEEKDAYS,
            "awaits_import": live and instance.awaits_import(),
            # Who holds access to it now: its own grants and those on every instance of its
            # category; anyone may ask for more (the access form, prefilled with it).
            "grants": list(
                access.active(timezone.now()).filter(
                    Q(instance=instance) | Q(instance__isnull=True, category=instance.category)
                )
            ),
            "ask_access_url": f"{reverse('new_request', args=[Kind.ACCESS])}?"
            + urlencode({"instance": instance.slug})
            if live and workflow.can_file(request.user, Kind.ACCESS)
            else "",
        },
    )


@never_cache
def instance_live(request: HttpRequest, slug: str) -> HttpResponse:
    """What Compute shows of the instance now, as a fragment the instance page fetches after it
    loads (static/portal/instance_live.js), so the page never waits for Compute."""
    require_reader(request.user)
    instance = instances.latest(slug)
    if instance is None:
        raise Http404("No such instance.")
    reading, error = None, ""
    try:
        reading = observe_instance(instance, compute_client(timeout=15, attempts=1))
    except ComputeUnavailable as exc:
        error = str(exc)
    except Exception:  # noqa: BLE001 - no credentials, a library error: the fragment says so
        log.exception("reading Compute for %s", slug)
        error = "Compute could not be read."
    shown = status_from(reading) if reading is not None else None
    return render(
        request,
        "requests_app/_instance_live.html",
        {
            "instance": instance,
            "reading": reading,
            "vms": [
                (name, status, reading.versions.get(name, ""))
                for name, status in reading.vms.items()
            ]
            if reading is not None
            else [],
            "error": error,
            "shown": InstanceStatus(shown).label if shown else "",
            "agrees": shown == instance.status,
            "read_at": timezone.now(),
        },
    )


@require_POST
def instance_verify(request: HttpRequest, slug: str) -> HttpResponse:
    """DevOps: compare the instance with Compute and Terraform now (in a job)."""
    if not roles.has_role(request.user, roles.DEVOPS):
        raise PermissionDenied("Verifying instances is for DevOps.")
    instance = instances.live(slug)
    if instance is None or instance.status not in VERIFIABLE:
        raise Http404("No live instance to verify.")
    try:
        queued = enqueue_verification(instance.pk)
    except Exception:  # noqa: BLE001 - Redis down: say so rather than fail the page
        messages.error(request, "The job queue is unreachable; try Verify again in a minute.")
        return redirect("instance_detail", slug=slug)
    messages.info(
        request,
        f"Verification of {slug} is queued: Compute and a terraform plan, about a minute."
        if queued
        else f"A verification of {slug} is already queued or running.",
    )
    return redirect("instance_detail", slug=slug)


# Rows the Access page shows a page.
ACCESS_ROWS = 50


def access_list(request: HttpRequest) -> HttpResponse:
    """Who holds which access now (the grants in force, the first to end first), or the grants
    that have ended (`expired=true`), filtered as GET /api/v1/access/ is, by the same rules."""
    require_reader(request.user)
    now = timezone.now()
    names = ("category", "scope", "person", "expired")
    given = {name: value for name in names if (value := request.GET.get(name, "").strip())}
    errors: dict[str, list[str]] = {}
    try:
        params = check_json(AccessFiltersSerializer, given)
    except ValidationError as exc:
        errors, params = error_messages(exc.detail), {}
    ended = bool(params.get("expired"))
    rows = access.filtered(access.expired(now) if ended else access.active(now), params)
    if errors:
        rows = rows.none()
    page = Paginator(rows, ACCESS_ROWS).get_page(request.GET.get("page"))
    grants = [(grant, access.days_left(grant, now)) for grant in page.object_list]
    kept = QueryDict(mutable=True)
    kept.update(given)
    shown: dict[str, str] = {**given}
    shown.update({name: params[name] for name in ("category", "scope") if name in params})
    return render(
        request,
        "requests_app/access_list.html",
        {
            "page": page,
            "grants": grants,
            "ended": ended,
            "filters": shown,
            "filter_errors": errors,
            "filter_query": kept,
            "categories": Category.choices,
            "scopes": AccessScope.choices,
            "can_ask": workflow.can_file(request.user, Kind.ACCESS),
        },
        status=400 if errors else 200,
    )
