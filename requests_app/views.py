"""Pages. No business rules here: they validate with the forms and act through the workflow."""

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal import roles
from provisioning import instances, runs
from provisioning.models import WEEKDAYS, Instance
from provisioning.verify import VERIFIABLE, enqueue_verification
from requests_app import validation, workflow
from requests_app.forms import FORMS, ActionForm, CommentForm
from requests_app.models import (
    OPEN_STATES,
    PROVISIONING_KINDS,
    Event,
    Kind,
    Notification,
    Request,
    State,
)
from requests_app.sla import policies, status
from requests_app.transitions import RULES

if TYPE_CHECKING:
    from portal.roles import AnyUser

KIND_HELP: dict[str, str] = {
    Kind.CREATE: "A new instance for a new customer or prospect.",
    Kind.SUSPEND: "Pause an instance for a customer who intends to come back within months.",
    Kind.RESUME: "Bring a suspended instance back from its snapshot.",
    Kind.TEARDOWN: "Delete an instance and its data for good.",
    Kind.UPGRADE: "Move an instance to a newer release (within a week of the release).",
    Kind.ENABLE_EXECUTORS: "Turn on executors for an instance.",
    Kind.FEATURE: "Anything else the customer needs from DevOps.",
}


def with_timers(rows: Iterable[Request]) -> list[Request]:
    """Attach each request's SLA timers (computed once per row; the calendar is cached)."""
    now = timezone.now()
    rows = list(rows)
    for row in rows:
        row.sla = status.sla_json(row, now)
        row.working = {which: policies.is_working(row, which) for which in policies.TIMERS}
    return rows


def require_reader(user: "AnyUser") -> None:
    if not workflow.can_read(user):
        raise PermissionDenied("Your account has no role in the portal.")


def get_request_for_user(request: HttpRequest, pk: int) -> Request:
    require_reader(request.user)
    events = Event.objects.select_related("by").order_by("at", "id")
    queryset = Request.objects.with_related().prefetch_related(Prefetch("events", queryset=events))
    return get_object_or_404(queryset, pk=pk)


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    counts: dict[str, int] = {}
    if workflow.can_read(user):
        counts = Request.objects.aggregate(
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


def request_list(request: HttpRequest, mine: bool = False) -> HttpResponse:
    require_reader(request.user)
    queryset = Request.objects.with_related().order_by("-created_at", "-id")
    state, kind, instance = (request.GET.get(k, "") for k in ("state", "kind", "instance"))
    if mine:
        queryset = queryset.filter(requested_by=request.user.pk)
    if state in State.values:
        queryset = queryset.filter(state=state)
    if kind in Kind.values:
        queryset = queryset.filter(kind=kind)
    if instance:
        queryset = queryset.filter(instance_slug=instance)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    page.object_list = with_timers(page.object_list)
    return render(
        request,
        "requests_app/request_list.html",
        {
            "page": page,
            "mine": mine,
            "states": State.choices,
            "kinds": Kind.choices,
            "filters": {"state": state, "kind": kind, "instance": instance},
            "title": "My requests" if mine else "All requests",
        },
    )


def my_requests(request: HttpRequest) -> HttpResponse:
    return request_list(request, mine=True)


def new_request_choose(request: HttpRequest) -> HttpResponse:
    if not workflow.can_file(request.user):
        raise PermissionDenied("Only CE and Sales file requests.")
    kinds = [(value, label, KIND_HELP[value]) for value, label in Kind.choices]
    return render(request, "requests_app/new_request_choose.html", {"kinds": kinds})


def new_request(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in FORMS:
        raise Http404("No such request kind.")
    if not workflow.can_file(request.user):
        raise PermissionDenied("Only CE and Sales file requests.")
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
                messages.success(
                    request, f"Request #{created.pk} filed; CE Leadership will review it."
                )
                return redirect("request_detail", pk=created.pk)
    else:
        form = form_class(initial={"instance": request.GET.get("instance", "")})
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
            }
        ),
        "recommended": getattr(form, "recommended_machine_type", None),
    }
    return render(request, "requests_app/new_request.html", context, status=200)


def request_detail(
    request: HttpRequest,
    pk: int,
    error: str | None = None,
    status: int = 200,
    action_form: ActionForm | None = None,
) -> HttpResponse:
    target = with_timers([get_request_for_user(request, pk)])[0]
    allowed = workflow.allowed_actions(request.user, target)
    buttons = [RULES[action] for action in allowed]
    context = {
        "req": target,
        "events": list(target.events.all()),
        "buttons": buttons,
        "can_comment": workflow.can_comment(request.user),
        "comment_form": CommentForm(),
        "action_form": action_form or ActionForm(),
        "error": error,
        "is_requester": target.requested_by_id == request.user.pk,
        **(runs_context(target, request.user) if target.kind != Kind.FEATURE else {}),
        **confirm_context(target),
    }
    return render(request, "requests_app/request_detail.html", context, status=status)


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


@require_POST
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    target = get_request_for_user(request, pk)
    form = ActionForm(data=request.POST)
    if not form.is_valid():
        return request_detail(request, pk, error="Check the form.", status=400, action_form=form)
    try:
        workflow.perform(
            request.user,
            target.pk,
            action,
            comment=form.cleaned_data["comment"],
            due_at=form.cleaned_data["due_at"],
            confirm=form.cleaned_data["confirm"],
        )
    except workflow.WorkflowError as exc:
        return request_detail(request, pk, error=exc.message, status=exc.status, action_form=form)
    label = RULES[action].label if action in RULES else action
    messages.success(request, f"{label}: done.")
    return redirect("request_detail", pk=pk)


@require_POST
def request_comment(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_request_for_user(request, pk)
    try:
        workflow.add_comment(request.user, target.pk, request.POST.get("body", ""))
    except workflow.WorkflowError as exc:
        return request_detail(request, pk, error=exc.message, status=exc.status)
    messages.success(request, "Comment added.")
    return redirect("request_detail", pk=pk)


def approvals(request: HttpRequest) -> HttpResponse:
    user = request.user
    sections: list[tuple[str, str, str]] = []
    if roles.has_role(user, roles.CE_LEADERSHIP):
        sections.append(("CE Leadership approval", "approve", State.PENDING_APPROVAL))
    if roles.has_role(user, roles.TECH_REVIEW):
        sections.append(("Tech review", "tech_approve", State.TECH_REVIEW))
    if not sections:
        raise PermissionDenied("The approvals inbox is for CE Leadership and Tech Review.")
    inbox = []
    for title, action, state in sections:
        rows = with_timers(
            Request.objects.with_related().filter(state=state).order_by("created_at", "id")
        )
        inbox.append({"title": title, "action": action, "requests": rows})
    return render(request, "requests_app/approvals.html", {"inbox": inbox})


def devops_queue(request: HttpRequest) -> HttpResponse:
    if not roles.has_role(request.user, roles.DEVOPS):
        raise PermissionDenied("The queue is for DevOps.")
    base = Request.objects.with_related()
    # Oldest due first: what breaches soonest is at the top.
    by_due = (
        F("resolution_due_at").asc(nulls_last=True),
        F("response_due_at").asc(nulls_last=True),
        "created_at",
        "id",
    )
    working = [State.IN_PROGRESS, State.WAITING_ON_CUSTOMER]
    context = {
        "queued": with_timers(base.filter(state=State.QUEUED).order_by(*by_due)),
        "working": with_timers(base.filter(state__in=working).order_by(*by_due)),
        # Mail and Slack that could not be sent after every attempt: someone has to tell people.
        "failed_notifications": Notification.objects.filter(status=Notification.Status.FAILED)
        .select_related("request", "instance")
        .order_by("-created_at")[:20],
    }
    return render(request, "requests_app/queue.html", context)


def instance_list(request: HttpRequest) -> HttpResponse:
    require_reader(request.user)
    rows = Instance.objects.annotate(
        open_requests=Count("requests", filter=Q(requests__state__in=OPEN_STATES))
    ).order_by("slug", "-created_at")
    return render(request, "requests_app/instance_list.html", {"instances": rows})


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
    return render(
        request,
        "requests_app/instance_detail.html",
        {
            "instance": instance,
            "requests": related,
            "can_verify": roles.has_role(request.user, roles.DEVOPS)
            and instance.status in VERIFIABLE,
            "weekdays": WEEKDAYS,
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
