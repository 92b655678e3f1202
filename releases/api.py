"""`/api/v1/releases/`: releases, their upgrades per instance, and rollout waves (docs/api.md).
Errors answer the API's one error body; changes go through releases.opening and releases.waves."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request as ApiRequest
from rest_framework.response import Response

from portal import roles
from releases import opening, progress, waves
from releases.models import RELEASE_VERSION, Release, ReleaseKind, Wave
from requests_app import workflow
from requests_app.api import CanRead, Pages, errors
from requests_app.serializers import (
    DATE_TIME,
    NON_BLANK,
    JsonChoice,
    JsonDateTime,
    JsonField,
    JsonList,
    JsonString,
    check_json,
    error_messages,
)

VERSION_MESSAGE = "A version such as 6.2.0 (a leading v is accepted)."
assert DATE_TIME  # the date-time pattern JsonDateTime holds published_at to


class JsonBoolean(JsonField, serializers.Field):
    """A JSON true or false (not a string, not a number)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class NewReleaseSerializer(serializers.Serializer):
    version = JsonString(pattern=RELEASE_VERSION, message=VERSION_MESSAGE, max_length=40)
    published_at = JsonDateTime(required=False, help_text="Default: now.")
    kind = JsonChoice(
        ReleaseKind.choices,
        required=False,
        help_text="`emergency` marks an emergency release; otherwise the kind follows from the "
        "version (monthly when major or minor changes, patch when only the patch number does).",
    )
    notes_url = JsonString(
        pattern=r"https?://[^\u0000-\u0020]+",
        required=False,
        max_length=500,
        message="A http(s) URL.",
    )


class NewWaveSerializer(serializers.Serializer):
    instances = JsonList(
        child=JsonString(pattern=NON_BLANK, max_length=28),
        help_text="Slugs of instances with an open upgrade to this release.",
    )
    override_window = JsonBoolean(
        required=False, help_text="Apply outside the instances' maintenance windows."
    )


class ConfirmWaveSerializer(serializers.Serializer):
    override_window = JsonBoolean(required=False)


class ReleaseSerializer(serializers.ModelSerializer):
    notes_url = serializers.CharField(
        allow_blank=True, read_only=True, help_text="The release notes; empty when unknown."
    )
    due_at = serializers.SerializerMethodField(
        help_text="When the upgrades to this release are due (7 days after publication)."
    )

    class Meta:
        model = Release
        fields = ["version", "kind", "published_at", "notes_url", "source", "due_at"]
        read_only_fields = fields

    def get_due_at(self, obj: Release) -> datetime:
        return timezone.localtime(progress.due_at(obj))


class ReleaseInstanceSerializer(serializers.Serializer):
    slug = serializers.CharField()
    from_version = serializers.CharField(allow_blank=True)
    request = serializers.IntegerField()
    state = serializers.CharField()
    run_state = serializers.CharField(allow_null=True)
    wave = serializers.IntegerField(allow_null=True)


class WaveItemSerializer(serializers.Serializer):
    slug = serializers.CharField()
    request = serializers.IntegerField()
    state = serializers.CharField()
    run = serializers.IntegerField(allow_null=True)
    plan_differs = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)


class WaveSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    release = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    override_window = serializers.BooleanField()
    confirmed_by = serializers.CharField(allow_null=True)
    confirmed_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    halted_at = serializers.DateTimeField(allow_null=True)
    halt_reason = serializers.CharField(allow_blank=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    items = WaveItemSerializer(many=True)


class ReleaseDetailSerializer(ReleaseSerializer):
    instances = ReleaseInstanceSerializer(many=True, source="progress_rows")
    waves = WaveSerializer(many=True, source="wave_rows")

    class Meta(ReleaseSerializer.Meta):
        fields = [*ReleaseSerializer.Meta.fields, "instances", "waves"]
        read_only_fields = fields


def _check(serializer: type[serializers.Serializer], data: object, message: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise workflow.Invalid("Send a JSON object.", {"non_field_errors": ["Not an object."]})
    try:
        return check_json(serializer, data)
    except ValidationError as exc:
        raise workflow.Invalid(message, error_messages(exc.detail)) from None


class ReleaseViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ReleaseSerializer
    permission_classes = [CanRead]
    pagination_class = Pages
    lookup_field = "version"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet[Release]:
        return Release.objects.newest_first()

    def get_object(self) -> Release:
        found = Release.objects.named(self.kwargs["version"])
        if found is None:
            raise Http404
        return found

    @extend_schema(responses={200: ReleaseDetailSerializer})
    def retrieve(self, request: ApiRequest, version: str | None = None) -> Response:
        return Response(detail_json(self.get_object(), self.get_serializer_context()))

    @extend_schema(
        request=NewReleaseSerializer,
        responses={201: ReleaseDetailSerializer, **errors(400, 409)},
        description="Record a release (DevOps). A new newest release opens one upgrade request "
        "per active instance behind it. The same version twice (with or without `v`) is 409.",
    )
    def create(self, request: ApiRequest) -> Response:
        if not roles.has_role(request.user, roles.DEVOPS):
            raise workflow.Forbidden("Only DevOps record releases.")
        data = _check(NewReleaseSerializer, request.data, "The release has errors.")
        try:
            release, created = opening.record(
                data["version"],
                data.get("published_at") or timezone.now(),
                emergency=data.get("kind") == ReleaseKind.EMERGENCY,
                notes_url=data.get("notes_url", ""),
                user=request.user,
            )
        except opening.ReleaseInvalid as exc:
            raise workflow.Invalid("The release has errors.", exc.errors) from None
        if not created:
            raise workflow.Conflict(
                f"Release {release.version} is already recorded.",
                {"version": [f"{release.version} is already recorded."]},
            )
        return Response(
            detail_json(release, self.get_serializer_context()), status=status.HTTP_201_CREATED
        )

    @extend_schema(
        methods=["post"],
        request=NewWaveSerializer,
        responses={201: WaveSerializer, **errors(400, 409)},
        description="Make a rollout wave (DevOps): picks up (assigned to the caller) and plans "
        "the upgrade of each instance.",
    )
    @extend_schema(methods=["get"], request=None, responses={200: WaveSerializer(many=True)})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def waves(self, request: ApiRequest, version: str | None = None) -> Response:
        release = self.get_object()
        if request.method == "GET":
            rows = [wave_json(w) for w in release.waves.order_by("number")]
            return Response(WaveSerializer(rows, many=True).data)
        data = _check(NewWaveSerializer, request.data, "The wave has errors.")
        wave = waves.create(
            release,
            data["instances"],
            request.user,  # type: ignore[arg-type]  # CanRead: a signed-in User
            override_window=data.get("override_window", False),
        )
        return Response(WaveSerializer(wave_json(wave)).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ConfirmWaveSerializer,
        responses={200: WaveSerializer, **errors(400, 409)},
        description="Confirm the wave's planned runs (DevOps): at most ROLLOUT_MAX_PARALLEL "
        "apply at once, each inside its instance's maintenance window unless overridden; the "
        "first errored run halts the wave.",
    )
    @action(detail=True, methods=["post"], url_path=r"waves/(?P<wave_id>[0-9]+)/confirm")
    def confirm_wave(
        self, request: ApiRequest, version: str | None = None, wave_id: str | None = None
    ) -> Response:
        release = self.get_object()
        wave = Wave.objects.filter(release=release, pk=int(wave_id or 0)).first()
        if wave is None:
            raise Http404
        data = _check(ConfirmWaveSerializer, request.data, "The confirm has errors.")
        wave = waves.confirm(
            wave,
            request.user,  # type: ignore[arg-type]  # CanRead: a signed-in User
            override_window=data.get("override_window"),
        )
        return Response(WaveSerializer(wave_json(wave)).data)


def wave_json(wave: Wave) -> dict[str, Any]:
    views = waves.view(wave)
    return {
        "id": wave.pk,
        "number": wave.number,
        "release": wave.release.version,
        "created_by": wave.created_by.get_username(),
        "created_at": timezone.localtime(wave.created_at),
        "override_window": wave.override_window,
        "confirmed_by": wave.confirmed_by.get_username() if wave.confirmed_by else None,
        "confirmed_at": wave.confirmed_at and timezone.localtime(wave.confirmed_at),
        "status": waves.status_of(wave),
        "halted_at": wave.halted_at and timezone.localtime(wave.halted_at),
        "halt_reason": wave.halt_reason,
        "finished_at": wave.finished_at and timezone.localtime(wave.finished_at),
        "items": [
            {
                "slug": v.item.instance.slug,
                "request": v.request.pk,
                "state": v.state,
                "run": v.run.pk if v.run else None,
                "plan_differs": v.differs,
                "error": v.item.error,
            }
            for v in views
        ],
    }


def detail_json(release: Release, context: Mapping[str, Any]) -> dict[str, Any]:
    release.progress_rows = progress.rows(release)  # type: ignore[attr-defined]
    release.wave_rows = [  # type: ignore[attr-defined]
        wave_json(w) for w in release.waves.select_related("created_by", "confirmed_by")
    ]
    return dict(ReleaseDetailSerializer(release, context=context).data)
