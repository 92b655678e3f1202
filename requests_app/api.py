"""The JSON API of docs/api.md. It validates with the same forms as the pages and
changes requests only through the workflow functions."""

from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request as ApiRequest
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from provisioning import instances, runs
from provisioning.models import Instance, Run
from requests_app import workflow
from requests_app.forms import FORMS, ActionForm
from requests_app.models import Event, Kind, Request, State
from requests_app.sla.status import filter_by_timer_status, sla_json

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class CanRead(permissions.BasePermission):
    message = "Your account has no role in the portal."

    def has_permission(self, request: ApiRequest, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated) and workflow.can_read(
            request.user
        )


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Workflow errors carry their own status: 400 with field errors, 403, 409."""
    if isinstance(exc, workflow.WorkflowError):
        body: dict[str, str | list[str]] = {"detail": exc.message}
        body.update(exc.errors)
        return Response(body, status=exc.status)
    if isinstance(exc, Request.DoesNotExist):
        return Response({"detail": "Not found."}, status=404)
    return exception_handler(exc, context)


class EventSerializer(serializers.ModelSerializer):
    by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Event
        fields = ["at", "by", "action", "from_state", "to_state", "comment"]


class RequestSerializer(serializers.ModelSerializer):
    instance = serializers.CharField(source="instance_slug")
    requested_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    assignee: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    sla = serializers.SerializerMethodField()
    events = EventSerializer(many=True, read_only=True)
    runs = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    due_at = serializers.DateTimeField(source="target_due_at", read_only=True)

    class Meta:
        model = Request
        fields = [
            "id",
            "kind",
            "state",
            "customer",
            "instance",
            "requested_by",
            "assignee",
            "standard",
            "non_standard_reasons",
            "external_id",
            "created_at",
            "updated_at",
            "justification",
            "machine_type",
            "zone",
            "access",
            "allowed_ip_ranges",
            "users",
            "repositories",
            "target_version",
            "release_published_at",
            "due_at",
            "sla",
            "events",
            "runs",
            "allowed_actions",
        ]

    def get_sla(self, obj: Request) -> dict:
        return sla_json(obj)

    def get_runs(self, obj: Request) -> list:
        found = self.context.get("runs")
        items = found.get(obj.pk, []) if found is not None else runs.runs_for(obj.pk)
        # many=True makes a ListSerializer, whose data is a list; the stubs type it as one row.
        return RunSerializer(items, many=True).data  # type: ignore[return-value]

    def get_allowed_actions(self, obj: Request) -> list[str] | None:
        # Only on one request: working it out costs queries per request.
        if not self.context.get("detail"):
            return None
        return workflow.allowed_actions(self.context["request"].user, obj)


class RunSerializer(serializers.ModelSerializer):
    log_tail = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "kind",
            "state",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "plan_summary",
            "plan_text",
            "steps",
            "error",
            "error_code",
            "workaround",
            "outputs",
            "log_tail",
        ]

    def get_log_tail(self, obj: Run) -> str:
        return obj.log[-4000:]


class InstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instance
        fields = [
            "slug",
            "customer",
            "status",
            "gcp_project",
            "zone",
            "machine_type",
            "version",
            "access",
            "allowed_ip_ranges",
            "executors_enabled",
            "url",
            "users",
            "repositories",
            "created_at",
            "drift",
            "verified_at",
        ]


def true_param(value: object) -> bool:
    return str(value).lower() in ("1", "true", "yes")


class BadFilter(APIException):
    status_code = 400


REQUEST_FILTERS = [
    OpenApiParameter("state", str, enum=[s.value for s in State]),
    OpenApiParameter("kind", str, enum=[k.value for k in Kind]),
    OpenApiParameter("instance", str, description="instance slug"),
    OpenApiParameter("external_id", str),
    OpenApiParameter("breached", bool),
    OpenApiParameter("at_risk", bool),
]


class RequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RequestSerializer
    permission_classes = [CanRead]

    def get_queryset(self) -> QuerySet[Request]:
        events = Event.objects.select_related("by").order_by("at", "id")
        queryset = Request.objects.with_related().prefetch_related(
            Prefetch("events", queryset=events)
        )
        params = self.request.query_params
        errors: dict[str, list[str]] = {}
        if "state" in params:
            if params["state"] not in State.values:
                errors["state"] = [f"Unknown state {params['state']!r}."]
            queryset = queryset.filter(state=params["state"])
        if "kind" in params:
            if params["kind"] not in Kind.values:
                errors["kind"] = [f"Unknown kind {params['kind']!r}."]
            queryset = queryset.filter(kind=params["kind"])
        if "instance" in params:
            queryset = queryset.filter(instance_slug=params["instance"])
        if "external_id" in params:
            queryset = queryset.filter(external_id=params["external_id"])
        for flag in ("breached", "at_risk"):
            if flag in params:
                if params[flag].lower() not in ("true", "false", "1", "0", "yes", "no"):
                    errors[flag] = ["Use true or false."]
                else:
                    queryset = filter_by_timer_status(queryset, flag, true_param(params[flag]))
        if errors and self.action == "list":
            raise BadFilter(errors)
        return queryset.order_by("-created_at", "-id")

    @extend_schema(parameters=REQUEST_FILTERS)
    def list(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # REST_FRAMEWORK sets a pagination class
        context = {
            **self.get_serializer_context(),
            "runs": runs.runs_for_many([r.pk for r in page]),
        }
        return self.get_paginated_response(RequestSerializer(page, many=True, context=context).data)

    def retrieve(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        return Response(self._fresh(self.get_object().pk))

    @extend_schema(
        request=inline_serializer(
            "NewRequest",
            {
                "kind": serializers.ChoiceField(Kind.choices),
                "customer": serializers.CharField(),
                "instance": serializers.CharField(),
                "justification": serializers.CharField(required=False),
                "non_standard_reasons": serializers.ListField(child=serializers.CharField()),
                "machine_type": serializers.CharField(required=False),
                "zone": serializers.CharField(required=False),
                "access": serializers.CharField(required=False),
                "allowed_ip_ranges": serializers.ListField(
                    child=serializers.CharField(), required=False
                ),
                "users": serializers.IntegerField(required=False),
                "repositories": serializers.IntegerField(required=False),
                "target_version": serializers.CharField(required=False),
                "release_published_at": serializers.DateTimeField(required=False),
                "confirm": serializers.CharField(required=False),
            },
        ),
        responses={201: RequestSerializer},
    )
    def create(self, request: ApiRequest) -> Response:
        if not workflow.can_file(request.user):
            raise workflow.Forbidden("Only CE and Sales file requests.")
        if not isinstance(request.data, dict):
            raise workflow.Invalid("Send a JSON object.", {"non_field_errors": ["Not an object."]})
        kind = request.data.get("kind")
        # A kind that is not a string (a list, say) is unknown too, not a TypeError on lookup.
        if not isinstance(kind, str) or kind not in FORMS:
            choices = ", ".join(Kind.values)
            raise workflow.Invalid("Unknown kind.", {"kind": [f"Choose one of: {choices}."]})
        form = FORMS[kind](data=request.data)
        if not form.is_valid():
            errors = {
                field: [e["message"] for e in errs]
                for field, errs in form.errors.get_json_data().items()
            }
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            raise workflow.Invalid("The request has errors.", errors)
        created = workflow.file_request(request.user, kind, form.cleaned_data)
        return Response(self._fresh(created.pk), status=status.HTTP_201_CREATED)

    def _fresh(self, pk: int) -> dict[str, Any]:
        obj = self.get_queryset().get(pk=pk)
        context = {**self.get_serializer_context(), "detail": True}
        return RequestSerializer(obj, context=context).data

    @extend_schema(
        request=inline_serializer(
            "ActionBody",
            {
                "comment": serializers.CharField(required=False),
                "due_at": serializers.DateTimeField(required=False),
                "confirm": serializers.CharField(required=False),
            },
        ),
        responses={200: RequestSerializer},
        parameters=[OpenApiParameter("action_name", OpenApiTypes.STR, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<action_name>[a-z_]+)")
    def actions(
        self, request: ApiRequest, pk: str | None = None, action_name: str | None = None
    ) -> Response:
        target = get_object_or_404(Request, pk=pk)
        form = ActionForm(data=request.data if isinstance(request.data, dict) else {})
        if not form.is_valid():
            errors = {
                f: [e["message"] for e in errs] for f, errs in form.errors.get_json_data().items()
            }
            raise workflow.Invalid("The action has errors.", errors)
        workflow.perform(
            request.user,
            target.pk,
            action_name or "",  # the URL pattern makes sure there is one
            comment=form.cleaned_data["comment"],
            due_at=form.cleaned_data["due_at"],
            confirm=form.cleaned_data["confirm"],
        )
        return Response(self._fresh(target.pk))

    @extend_schema(
        request=inline_serializer("NewComment", {"body": serializers.CharField()}),
        responses={201: RequestSerializer},
    )
    @action(detail=True, methods=["post"])
    def comments(self, request: ApiRequest, pk: str | None = None) -> Response:
        target = get_object_or_404(Request, pk=pk)
        body = request.data.get("body") if isinstance(request.data, dict) else None
        if not isinstance(body, str):
            raise workflow.Invalid("Write a comment.", {"body": ["Write a comment."]})
        workflow.add_comment(request.user, target.pk, body)
        return Response(self._fresh(target.pk), status=status.HTTP_201_CREATED)


class InstanceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstanceSerializer
    permission_classes = [CanRead]
    lookup_field = "slug"
    queryset = Instance.objects.order_by("slug")

    def get_object(self) -> Instance:
        # A slug may be reused after a teardown: the live instance wins, else the latest.
        found = instances.latest(self.kwargs["slug"])
        if found is None:
            raise Http404
        return found
