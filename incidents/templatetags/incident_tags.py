"""Incidents where other pages show them: `{% open_incidents instance %}` on an instance's page
(a template tag, so that the request pages need not import incidents), severity badges."""

from typing import Any

from django import template

from incidents import workflow
from incidents.models import Incident
from provisioning.models import Instance

register = template.Library()


@register.inclusion_tag("incidents/_open_incidents.html", takes_context=True)
def open_incidents(context: template.Context, instance: Instance) -> dict[str, Any]:
    """The unresolved incidents that affect `instance`, most severe first (one query), and a
    link to open one for those who may."""
    rows = list(
        Incident.objects.unresolved()
        .filter(instances=instance)
        .order_by("severity", "-created_at", "-id")
        .only("id", "title", "severity", "state", "created_at")
    )
    user = context["request"].user
    return {"incidents": rows, "instance": instance, "can_open": workflow.can_open(user)}


@register.inclusion_tag("incidents/_badge.html")
def incident_badge(incident: Incident) -> dict[str, Any]:
    return {"incident": incident}
