"""The JSON API of docs/api.md. A JSON body is first held to the published schema
(requests_app/serializers.py), then validated with the same forms as the pages; requests change
only through the workflow functions. Every error answers the one body of `ErrorSerializer`."""

from typing import Any

from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request as ApiRequest
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView, exception_handler

from provisioning import instances, runs
from provisioning.models import Instance
from requests_app import access, loading, search, workflow
from requests_app.counting import CountedPaginator
from requests_app.forms import FORMS, ActionForm, CommentForm
from requests_app.models import Event, Kind, Request
from requests_app.serializers import (
    FILING_SERIALIZERS,
    LIST_COLUMNS,
    RUN_COLUMNS,
    AccessFiltersSerializer,
    AccessGrantSerializer,
    ActionBodySerializer,
    ErrorSerializer,
    InstanceFiltersSerializer,
    InstanceSerializer,
    NewCommentSerializer,
    RequestFiltersSerializer,
    RequestSerializer,
    check_json,
    error_messages,
    event_rows,
    usernames_of,
)
from requests_app.transitions import RULES


class CanRead(permissions.BasePermission):
    message = "Your account has no role in the portal."

    def has_permission(self, request: ApiRequest, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated) and workflow.can_read(
            request.user
        )


# -- errors -------------------------------------------------------------------------------------


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"detail": message, **(errors or {})}


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error in the one body of docs/api.md: `{"detail": ..., "<field>": [...]}`.
    Workflow errors carry their own status: 400 with field errors, 403, 409."""
    if isinstance(exc, workflow.WorkflowError):
        return Response(error_body(exc.message, exc.errors), status=exc.status)
    if isinstance(exc, Request.DoesNotExist):
        return Response(error_body("Not found."), status=404)
    response = exception_handler(exc, context)
    if response is not None and not is_error_body(response.data):
        # DRF's own: a ValidationError's field errors (or anything else) get their `detail`.
        found = error_messages(response.data)
        found.pop("detail", None)
        message = "The request has errors." if response.status_code == 400 else "Refused."
        response.data = error_body(message, found)
    return response


def is_error_body(data: object) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("detail"), str)
        and all(
            isinstance(value, list) and all(isinstance(item, str) for item in value)
            for key, value in data.items()
            if key != "detail"
        )
    )


@csrf_exempt  # like every API view: a POST to a wrong path is a 404, not a CSRF 403
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under /api/v1/ (an id that is not a number, say): 404 in the error body."""
    return JsonResponse(error_body("Not found."), status=404)


def form_errors(form: forms.Form) -> dict[str, list[str]]:
    errors = {
        field: [error["message"] for error in errs]
        for field, errs in form.errors.get_json_data().items()
    }
    if "__all__" in errors:
        errors["non_field_errors"] = errors.pop("__all__")
    return errors


def validate(
    form_class: type[forms.Form],
    schema: type[Serializer],
    data: object,
    message: str,
) -> forms.Form:
    """A JSON body held to `schema` (exactly what /api/schema/ says), then `form_class`'s rules.
    A form-encoded body (the pages' way, not in the schema) goes to the form alone."""
    if not isinstance(data, dict):
        raise workflow.Invalid("Send a JSON object.", {"non_field_errors": ["Not an object."]})
    if not isinstance(data, QueryDict):
        try:
            check_json(schema, data)
        except ValidationError as exc:
            raise workflow.Invalid(message, error_messages(exc.detail)) from None
    form = form_class(data=data)
    if not form.is_valid():
        raise workflow.Invalid(message, form_errors(form))
    return form


ERROR_MEANINGS = {
    400: "Bad input: field errors name each field (`non_field_errors` for the whole body).",
    401: "No credentials, or credentials that are not valid.",
    403: "No role in the portal, or this role may never take this action here, or the "
    "requester may not approve their own request.",
    404: "No such request, instance or page.",
    409: "The role may, but not now: the state does not allow it, or someone else acted first.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error responses `codes` in the one error body."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]) for code in codes
    }


class PortalAutoSchema(AutoSchema):
    """drf-spectacular's schema plus what every operation of the API can answer: 401 and 403
    where a permission is needed, 404 where the path names something or the list has pages;
    path ids typed as the integers their URL pattern takes. 400 and 409 each view declares."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = []
        if any(not isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += [401, 403]
        if "{" in self.path or (self._is_list_view() and self._get_paginator() is not None):
            codes.append(404)
        for code, response in errors(*codes).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    response, str(code), direction=direction
                )
        return dict(sorted(responses.items()))

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["schema"].get("pattern") == "^[0-9]+$":
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class Pages(PageNumberPagination):
    """DRF's page numbers (REST_FRAMEWORK's PAGE_SIZE a page), with `page` described as DRF
    reads it: empty is the first page, `last` the last one, any other value that names no page
    a 404. Every request is counted from the kept number (requests_app/counting.py)."""

    django_paginator_class = CountedPaginator

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "in": "query",
                "required": False,
                "allowEmptyValue": True,
                "description": "A page number (empty: the first page; `last`: the last one).",
                "schema": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "string", "enum": list(self.last_page_strings)},
                    ]
                },
            }
        ]


class RowsPaginator(CountedPaginator):
    """The page's requests made from rows of the columns their JSON reads (LIST_COLUMNS,
    requests_app/loading.py) rather than as whole models: 50 requests of 60 columns each."""

    def _get_page(self, object_list: Any, number: int, paginator: Paginator) -> Page:
        rows = loading.requests_from_rows(object_list, LIST_COLUMNS)
        # Django's documented hook for another Page, which django-stubs leaves out.
        return super()._get_page(rows, number, paginator)  # type: ignore[misc]


class RequestPages(Pages):
    django_paginator_class = RowsPaginator


def query_params(serializer: type[Serializer], request: ApiRequest) -> dict[str, Any]:
    """The query string held to `serializer` (the schema's parameters); 400 with field errors."""
    try:
        return check_json(serializer, request.query_params)
    except ValidationError as exc:
        raise workflow.Invalid("The filters have errors.", error_messages(exc.detail)) from None


# -- requests -----------------------------------------------------------------------------------

_BY_KIND: dict[str, Serializer | type[Serializer]] = {**FILING_SERIALIZERS}
NEW_REQUEST = PolymorphicProxySerializer(
    component_name="NewRequest",
    serializers=_BY_KIND,
    resource_type_field_name="kind",
)


class RequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RequestSerializer
    permission_classes = [CanRead]
    pagination_class = RequestPages
    # Ids are numbers: anything else is no request (404), never a ValueError on lookup.
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Request]:
        events = Event.objects.select_related("by").order_by("at", "id")
        return (
            Request.objects.with_related()
            .prefetch_related(Prefetch("events", queryset=events))
            .order_by("-created_at", "-id")
        )

    def filtered(self, queryset: QuerySet[Request]) -> QuerySet[Request]:
        """The list's filters (docs/api.md); 400 with field errors when one is not valid."""
        return search.apply_filters(queryset, query_params(RequestFiltersSerializer, self.request))

    @extend_schema(
        parameters=[RequestFiltersSerializer],
        responses={200: RequestSerializer(many=True), **errors(400)},
        description="Requests, 50 a page, newest first; with `q`, most relevant first (on "
        "PostgreSQL). The filters combine: a request must pass every one given.",
    )
    def list(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        # The request rows alone: the JSON names the instance by its slug, the people by their
        # usernames (one query for the page), the events come as rows in one query.
        listed = self.filtered(Request.objects.order_by("-created_at", "-id"))
        page = self.paginate_queryset(listed)
        assert page is not None  # REST_FRAMEWORK sets a pagination class
        ids = [r.pk for r in page]
        context = {
            **self.get_serializer_context(),
            "runs": runs.runs_for_many(ids, columns=RUN_COLUMNS),
            "events": event_rows(ids),
            "usernames": usernames_of(page),
        }
        return self.get_paginated_response(RequestSerializer(page, many=True, context=context).data)

    def retrieve(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        # The request and its events loaded once (get_object's queryset prefetches them).
        return Response(self._data(self.get_object()))

    @extend_schema(
        request=NEW_REQUEST,
        responses={201: RequestSerializer, **errors(400, 409)},
        description="File a request (CE and Sales; an `access` request: any role). The body's "
        "fields depend on `kind`. Besides what the schema says, the form checks what depends on "
        "the data: the instance exists and is in a state that allows the kind (a new slug is "
        "free), no other open request changes it, an upgrade names a newer version released in "
        "the past, a teardown's `confirm` repeats the slug, an IP allowlist has ranges without "
        "host bits, an access's instance is of the category given and its `expires_at` is in "
        "the future.",
    )
    def create(self, request: ApiRequest) -> Response:
        if not workflow.can_file_any(request.user):
            raise workflow.Forbidden("Your role may not file requests.")
        data = request.data
        if not isinstance(data, dict):
            raise workflow.Invalid("Send a JSON object.", {"non_field_errors": ["Not an object."]})
        kind = data.get("kind")
        # A kind that is not a string (a list, say) is unknown too, not a TypeError on lookup.
        if not isinstance(kind, str) or kind not in FILING_SERIALIZERS:
            choices = ", ".join(Kind.values)
            raise workflow.Invalid("Unknown kind.", {"kind": [f"Choose one of: {choices}."]})
        if not workflow.can_file(request.user, kind):
            raise workflow.Forbidden(workflow.file_refusal(kind))
        form = validate(FORMS[kind], FILING_SERIALIZERS[kind], data, "The request has errors.")
        created = workflow.file_request(request.user, kind, form.cleaned_data)
        return Response(self._fresh(created.pk), status=status.HTTP_201_CREATED)

    def _fresh(self, pk: int) -> dict[str, Any]:
        return self._data(self.get_queryset().get(pk=pk))

    def _data(self, obj: Request) -> dict[str, Any]:
        context = {**self.get_serializer_context(), "detail": True}
        return RequestSerializer(obj, context=context).data

    @extend_schema(
        request=ActionBodySerializer,
        responses={200: RequestSerializer, **errors(400, 409)},
        parameters=[
            OpenApiParameter("action_name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=[*RULES])
        ],
        description="Take an action (docs/api.md has who may take which, from which state). "
        "`set_target` needs a `due_at` in the future; `confirm` of a teardown needs `confirm` "
        "equal to the slug; `assign` takes an `assignee` that names an active member of DevOps "
        "(null or empty: nobody).",
    )
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<action_name>[a-z_]+)")
    def actions(
        self, request: ApiRequest, pk: str | None = None, action_name: str | None = None
    ) -> Response:
        target = get_object_or_404(Request, pk=pk)
        form = validate(ActionForm, ActionBodySerializer, request.data, "The action has errors.")
        workflow.perform(
            request.user,
            target.pk,
            action_name or "",  # the URL pattern makes sure there is one
            comment=form.cleaned_data["comment"],
            due_at=form.cleaned_data["due_at"],
            confirm=form.cleaned_data["confirm"],
            assignee=form.cleaned_data["assignee"],
        )
        return Response(self._fresh(target.pk))

    @extend_schema(
        request=NewCommentSerializer,
        responses={201: RequestSerializer, **errors(400)},
    )
    @action(detail=True, methods=["post"])
    def comments(self, request: ApiRequest, pk: str | None = None) -> Response:
        target = get_object_or_404(Request, pk=pk)
        if not workflow.can_comment(request.user):
            raise workflow.Forbidden("Managers read requests; they do not comment.")
        form = validate(CommentForm, NewCommentSerializer, request.data, "Write a comment.")
        workflow.add_comment(request.user, target.pk, form.cleaned_data["body"])
        return Response(self._fresh(target.pk), status=status.HTTP_201_CREATED)


# -- instances ----------------------------------------------------------------------------------


class InstanceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstanceSerializer
    permission_classes = [CanRead]
    pagination_class = Pages
    lookup_field = "slug"
    queryset = Instance.objects.order_by("slug")

    @extend_schema(
        parameters=[InstanceFiltersSerializer],
        responses={200: InstanceSerializer(many=True), **errors(400)},
        description="Every instance, torn down ones too, 50 a page, by slug.",
    )
    def list(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        params = query_params(InstanceFiltersSerializer, request)
        queryset = self.get_queryset()
        if "category" in params:
            queryset = queryset.filter(category=params["category"])
        page = self.paginate_queryset(queryset)
        assert page is not None  # REST_FRAMEWORK sets a pagination class
        return self.get_paginated_response(InstanceSerializer(page, many=True).data)

    def get_object(self) -> Instance:
        slug = self.kwargs["slug"]
        if "\x00" in slug:  # no slug has one, and PostgreSQL cannot compare with it
            raise Http404
        # A slug may be reused after a teardown: the live instance wins, else the latest.
        found = instances.latest(slug)
        if found is None:
            raise Http404
        return found


# -- access grants ------------------------------------------------------------------------------


class AccessGrantViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AccessGrantSerializer
    permission_classes = [CanRead]
    pagination_class = Pages

    @extend_schema(
        parameters=[AccessFiltersSerializer],
        responses={200: AccessGrantSerializer(many=True), **errors(400)},
        description="Who holds which access now: the access requests DevOps granted whose "
        "expiry has not come, the first to end first, 50 a page (`expired=true`: those that "
        "have ended, the latest first).",
    )
    def list(self, request: ApiRequest, *args: Any, **kwargs: Any) -> Response:
        params = query_params(AccessFiltersSerializer, request)
        now = timezone.now()
        queryset = access.expired(now) if params.get("expired") else access.active(now)
        queryset = access.filtered(queryset, params)
        page = self.paginate_queryset(queryset)
        assert page is not None  # REST_FRAMEWORK sets a pagination class
        context = {**self.get_serializer_context(), "now": now}
        return self.get_paginated_response(
            AccessGrantSerializer(page, many=True, context=context).data
        )
