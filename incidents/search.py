"""The incident lists' filters, for the page and the API alike (already validated by
IncidentFiltersSerializer)."""

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet

from incidents.models import Incident


def apply_filters(queryset: QuerySet[Incident], params: Mapping[str, Any]) -> QuerySet[Incident]:
    if params.get("state"):
        queryset = queryset.filter(state=params["state"])
    if params.get("severity"):
        queryset = queryset.filter(severity=params["severity"])
    if "instance" in params:
        # A subquery, not a join: an incident on two matching rows is still listed once.
        affected = Incident.instances.through.objects.filter(
            instance__slug__iexact=params["instance"]
        ).values("incident_id")
        queryset = queryset.filter(pk__in=affected)
    return queryset
