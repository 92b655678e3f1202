"""The audit log page: sign-ins, sign-outs and failed attempts, for DevOps and superusers."""

import ipaddress
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.models import Outcome, SignInEvent
from portal import roles

PAGE_ROWS = 100


def audit_log(request: HttpRequest) -> HttpResponse:
    if not roles.has_role(request.user, roles.DEVOPS):  # superusers pass every role check
        raise PermissionDenied("The audit log is for DevOps.")
    events = SignInEvent.objects.select_related("user")
    outcome = request.GET.get("outcome", "")
    if outcome in Outcome.values:
        events = events.filter(outcome=outcome)
    else:
        outcome = ""
    query = request.GET.get("q", "").strip()[:150]
    if query:
        match = Q(username__iexact=query)
        try:
            match |= Q(ip_address=str(ipaddress.ip_address(query)))
        except ValueError:
            pass
        events = events.filter(match)
    page = Paginator(events, PAGE_ROWS).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "outcomes": Outcome.choices,
        "outcome": outcome,
        "query": query,
        **_lockout_facts(),
    }
    return render(request, "audit/log.html", context)


def _lockout_facts() -> dict[str, int]:
    return {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' lockout response (AXES_LOCKOUT_CALLABLE): the sign-in page's refusal, with
    429 Too Many Requests."""
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    context = {"username": username[:150], **_lockout_facts()}
    return render(request, "registration/locked_out.html", context, status=429)
