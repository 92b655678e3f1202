"""`/api/v1/incidents/` (docs/incidents.md). A JSON body is first held to the published schema
(incidents/serializers.py), then validated with the pages' forms; incidents change only through
incidents.workflow. Every error answers the API's one error body."""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request as ApiRequest
from rest_framework.response import Response

from incidents import search, workflow
from incidents.forms import IncidentActionForm, IncidentForm, IncidentUpdateForm
from incidents.models import Incident
from incidents.serializers import (
    IncidentActionSerializer,
    IncidentFiltersSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    NewIncidentSerializer,
)
from incidents.transitions import RULES
from requests_app.api import CanRead, Pages, errors, validate
from requests_app.serializers import check_json, error_messages


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = IncidentSerializer
    permission_classes = [CanRead]
    pagination_class = Pages
    # Ids are numbers: anything else is no incident (404), never a ValueError on lookup.
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Incident]:
        return Incident.objects.with_related().order_by("-created_at", "-id")

    def get_serializer_context(self) -> dict[str, Any]:
        # One instant for every timer of the answer.
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(
        parameters=[IncidentFiltersSerializer],
        responses={200: IncidentSerializer(many=True), **errors(400)},
        description="Incidents, 50 a page, newest first. The filters combine.",
    )
    def list(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        try:
            params = check_json(IncidentFiltersSerializer, request.query_params)
        except ValidationError as exc:
            raise workflow.Invalid("The filters have errors.", error_messages(exc.detail)) from None
        page = self.paginate_queryset(search.apply_filters(self.get_queryset(), params))
        assert page is not None  # REST_FRAMEWORK sets a pagination class
        data = IncidentSerializer(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)

    def retrieve(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        return Response(self._fresh(self.get_object().pk))

    @extend_schema(
        request=NewIncidentSerializer,
        responses={201: IncidentSerializer, **errors(400)},
        description="Open an incident (CE and DevOps): both SLA timers start, DevOps are "
        "notified. Besides what the schema says, each slug must name a live instance (400 "
        "with an `instances` error otherwise).",
    )
    def create(self, request: ApiRequest) -> Response:
        if not workflow.can_open(request.user):
            raise workflow.Forbidden("Only CE and DevOps open incidents.")
        form = validate(
            IncidentForm, NewIncidentSerializer, request.data, "The incident has errors."
        )
        data = form.cleaned_data
        opened = workflow.open_incident(
            request.user,
            title=data["title"],
            severity=data["severity"],
            instances=list(data["instances"]),
            description=data["description"],
        )
        return Response(self._fresh(opened.pk), status=status.HTTP_201_CREATED)

    def _fresh(self, pk: int) -> dict[str, Any]:
        obj = self.get_queryset().get(pk=pk)
        context = {**self.get_serializer_context(), "detail": True}
        return dict(IncidentSerializer(obj, context=context).data)

    @extend_schema(
        request=IncidentActionSerializer,
        responses={200: IncidentSerializer, **errors(400, 409)},
        parameters=[
            OpenApiParameter("action_name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=[*RULES])
        ],
        description="Take an action (DevOps): `ack` (open -> acknowledged; stops the "
        "acknowledge timer), `mitigate` (acknowledged -> mitigated), `resolve` (acknowledged "
        "or mitigated -> resolved; stops the resolution timer; a sev1 or sev2 incident needs "
        "`postmortem_url`, 400 without), `commander` (sets who leads the response: `commander` "
        "names an active DevOps member, null or empty nobody; the state stays). 403 for a role "
        "that may not, 409 for a state that does not allow it or when someone acted first.",
    )
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<action_name>[a-z_]+)")
    def actions(
        self, request: ApiRequest, pk: str | None = None, action_name: str | None = None
    ) -> Response:
        target = get_object_or_404(Incident, pk=pk)
        form = validate(
            IncidentActionForm, IncidentActionSerializer, request.data, "The action has errors."
        )
        workflow.perform(
            request.user,
            target.pk,
            action_name or "",  # the URL pattern makes sure there is one
            comment=form.cleaned_data["comment"],
            postmortem_url=form.cleaned_data["postmortem_url"],
            commander=form.cleaned_data["commander"],
        )
        return Response(self._fresh(target.pk))

    @extend_schema(
        request=IncidentUpdateSerializer,
        responses={201: IncidentSerializer, **errors(400)},
        description="Add an update to the timeline (CE and DevOps), in any state.",
    )
    @action(detail=True, methods=["post"])
    def updates(self, request: ApiRequest, pk: str | None = None) -> Response:
        target = get_object_or_404(Incident, pk=pk)
        if not workflow.can_update(request.user):
            raise workflow.Forbidden("Only CE and DevOps post incident updates.")
        form = validate(
            IncidentUpdateForm, IncidentUpdateSerializer, request.data, "Write the update."
        )
        workflow.add_update(request.user, target.pk, form.cleaned_data["body"])
        return Response(self._fresh(target.pk), status=status.HTTP_201_CREATED)
