"""The incident pages: every role reads them; CE and DevOps open incidents and post updates;
DevOps acknowledge, mitigate, resolve and set the commander. No rules here: the forms validate
and incidents.workflow decides. Each POST redirects back with a message."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from incidents import policies, search, timers, workflow
from incidents.forms import IncidentActionForm, IncidentForm, IncidentUpdateForm
from incidents.models import TIMERS, Incident, IncidentState, Severity
from incidents.serializers import IncidentFiltersSerializer
from incidents.transitions import RULES
from requests_app import workflow as request_workflow
from requests_app.serializers import check_json, error_messages
from requests_app.sla import policies as sla_policies

LIST_FILTERS = ("state", "severity", "instance")
DONE = {
    "ack": "Acknowledged: the acknowledge clock stopped.",
    "mitigate": "Marked mitigated: the impact is contained; resolve it when the cause is fixed.",
    "resolve": "Resolved: the resolution clock stopped.",
}


def _reader(request: HttpRequest) -> None:
    if not request_workflow.can_read(request.user):
        raise PermissionDenied("Your account has no role in the portal yet; ask an administrator.")


def with_timers(rows: list[Incident]) -> list[Incident]:
    """Attach each incident's timers and whether they count working days (one calendar and one
    set of policies for all of them)."""
    now = timezone.now()
    calendar, found = sla_policies.get_calendar(), policies.load()
    for row in rows:
        row.sla = timers.sla_json(row, now, calendar, found)  # type: ignore[attr-defined]
        row.working = {  # type: ignore[attr-defined]
            which: policies.target_for(row, which, found).mode == "working" for which in TIMERS
        }
    return rows


def incident_list(request: HttpRequest) -> HttpResponse:
    _reader(request)
    given = {name: value for name in LIST_FILTERS if (value := request.GET.get(name, "").strip())}
    errors: dict[str, list[str]] = {}
    queryset: QuerySet[Incident] = Incident.objects.with_related().order_by("-created_at", "-id")
    try:
        params = check_json(IncidentFiltersSerializer, given)
    except ValidationError as exc:
        errors, params = error_messages(exc.detail), {}
        queryset = queryset.none()
    queryset = search.apply_filters(queryset, params)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    page.object_list = with_timers(list(page.object_list))
    # What the form shows: as typed, but a valid state or severity as its value (the select's).
    shown: dict[str, str] = {**given}
    shown.update({name: params[name] for name in ("state", "severity") if name in params})
    kept = QueryDict(mutable=True)
    kept.update(given)
    return render(
        request,
        "incidents/incident_list.html",
        {
            "page": page,
            "states": IncidentState.choices,
            "severities": Severity.choices,
            "filters": shown,
            "filter_errors": errors,
            "filter_query": kept,
            "can_open": workflow.can_open(request.user),
        },
        status=400 if errors else 200,
    )


def new_incident(request: HttpRequest) -> HttpResponse:
    _reader(request)
    if not workflow.can_open(request.user):
        raise PermissionDenied("Only CE and DevOps open incidents.")
    if request.method == "POST":
        form = IncidentForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            opened = workflow.open_incident(
                request.user,
                title=data["title"],
                severity=data["severity"],
                instances=list(data["instances"]),
                description=data["description"],
            )
            messages.success(
                request, f"Incident #{opened.pk} opened: DevOps are notified, the clocks run."
            )
            return redirect("incident_detail", pk=opened.pk)
    else:
        form = IncidentForm(initial={"instances": request.GET.getlist("instance")})
    return render(request, "incidents/new_incident.html", {"form": form})


def _incident(pk: int) -> Incident:
    found = Incident.objects.with_related().filter(pk=pk).first()
    if found is None:
        raise Http404(f"There is no incident #{pk}.")
    return found


def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _reader(request)
    incident = with_timers([_incident(pk)])[0]
    allowed = workflow.allowed_actions(request.user, incident)
    context: dict[str, Any] = {
        "incident": incident,
        "buttons": [RULES[a] for a in allowed if a != "commander"],
        "can_set_commander": "commander" in allowed,
        "devops_members": request_workflow.devops_members() if "commander" in allowed else [],
        "can_update": workflow.can_update(request.user),
        "asks_postmortem": "resolve" in allowed,
        "draft": request.session.pop(f"incident-draft-{pk}", {}),
    }
    return render(request, "incidents/incident_detail.html", context)


@require_POST
def incident_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in RULES:
        raise Http404("There is no such action.")
    _reader(request)
    target = _incident(pk)
    form = IncidentActionForm(data=request.POST)
    try:
        if not form.is_valid():
            errors = {name: [str(e) for e in found] for name, found in form.errors.items()}
            raise workflow.Invalid("Check the form.", errors)
        done = workflow.perform(
            request.user,
            target.pk,
            action,
            comment=form.cleaned_data["comment"],
            postmortem_url=form.cleaned_data["postmortem_url"],
            commander=form.cleaned_data["commander"],
        )
    except workflow.Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except workflow.Conflict as exc:
        messages.error(request, exc.message)
    except workflow.Invalid as exc:
        found = [message for errors in exc.errors.values() for message in errors]
        messages.error(request, " ".join(dict.fromkeys(found)) or exc.message)
        request.session[f"incident-draft-{pk}"] = {
            "comment": request.POST.get("comment", ""),
            "postmortem_url": request.POST.get("postmortem_url", ""),
        }
    else:
        if action == "commander":
            who = done.commander.get_username() if done.commander else "nobody"
            messages.success(request, f"Commander: {who}.")
        else:
            messages.success(request, DONE[action])
    return redirect("incident_detail", pk=pk)


@require_POST
def incident_update(request: HttpRequest, pk: int) -> HttpResponse:
    _reader(request)
    target = _incident(pk)
    form = IncidentUpdateForm(data=request.POST)
    try:
        if not workflow.can_update(request.user):
            raise workflow.Forbidden("Managers read incidents; they do not post updates.")
        if not form.is_valid():
            raise workflow.Invalid(" ".join(str(m) for ms in form.errors.values() for m in ms))
        workflow.add_update(request.user, target.pk, form.cleaned_data["body"])
    except workflow.Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except workflow.Invalid as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Update posted.")
    return redirect("incident_detail", pk=pk)
