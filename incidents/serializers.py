"""What `/api/v1/incidents/` takes and answers. Bodies and query parameters are held to exactly
what the schema says with the strict `Json*` fields of requests_app/serializers.py, then
validated by the same forms as the pages (incidents/forms.py)."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents import forms, timers, workflow
from incidents.models import Incident, IncidentEvent, IncidentState, Severity
from incidents.transitions import RULES
from requests_app.serializers import (
    NON_BLANK,
    TEXT,
    JsonAnyCaseChoice,
    JsonChoice,
    JsonList,
    JsonString,
    TimerSerializer,
)

# What the server stores as a postmortem link (the form's URLField checks the rest).
URL = "https?://[^\\u0000-\\u0020]+"
URL_MESSAGE = "An http(s) URL."


class NewIncidentSerializer(serializers.Serializer):
    """Open an incident (CE, DevOps)."""

    title = JsonString(pattern=NON_BLANK, max_length=forms.TITLE_MAX)
    severity = JsonChoice(Severity.choices)
    instances = JsonList(
        child=JsonString(pattern=NON_BLANK, max_length=30),
        min_length=1,
        max_length=forms.INSTANCES_MAX,
        help_text="Slugs of the affected live instances.",
    )
    description = JsonString(
        pattern=TEXT, max_length=forms.TEXT_MAX, required=False, allow_null=True
    )


class IncidentActionSerializer(serializers.Serializer):
    comment = JsonString(
        pattern=TEXT,
        max_length=forms.TEXT_MAX,
        required=False,
        allow_null=True,
        help_text="Said in the timeline with the action.",
    )
    postmortem_url = JsonString(
        pattern=URL,
        message=URL_MESSAGE,
        max_length=forms.URL_MAX,
        required=False,
        allow_null=True,
        help_text="`resolve`: the postmortem; required to resolve a sev1 or sev2 incident.",
    )
    commander = JsonString(
        pattern=TEXT,
        max_length=150,
        required=False,
        allow_null=True,
        help_text="`commander`: the username of the DevOps member who leads the response; "
        "null or empty (or left out): nobody.",
    )


class IncidentUpdateSerializer(serializers.Serializer):
    body = JsonString(pattern=NON_BLANK, max_length=forms.TEXT_MAX)


class IncidentFiltersSerializer(serializers.Serializer):
    """The filters of GET /api/v1/incidents/ and of the incidents page. They combine."""

    state = JsonAnyCaseChoice(
        IncidentState.choices,
        required=False,
        help_text=f"The state, in any case: one of {', '.join(IncidentState.values)}.",
    )
    severity = JsonAnyCaseChoice(
        Severity.choices,
        required=False,
        help_text=f"The severity, in any case: one of {', '.join(Severity.values)}.",
    )
    instance = JsonString(
        required=False,
        help_text="An affected instance's slug, whole, in any case (empty matches none).",
    )


# -- what the API answers -----------------------------------------------------------------------


class IncidentSlaSerializer(serializers.Serializer):
    """The incident's two clocks (docs/sla.md's timer JSON), both started when it opened."""

    acknowledge = TimerSerializer(help_text="Stops at `ack`.")
    resolution = TimerSerializer(help_text="Stops at `resolve`.")


class IncidentEventSerializer(serializers.ModelSerializer):
    by: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Who; null: the portal."
    )

    class Meta:
        model = IncidentEvent
        fields = ["at", "by", "action", "from_state", "to_state", "body"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    instances = serializers.SerializerMethodField()
    opened_by: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="The username of who opened it."
    )
    commander: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="The username of the DevOps member who leads the response; null: nobody.",
    )
    postmortem_url = serializers.SerializerMethodField()
    sla = serializers.SerializerMethodField()
    events = IncidentEventSerializer(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "severity",
            "state",
            "instances",
            "description",
            "commander",
            "opened_by",
            "postmortem_url",
            "created_at",
            "updated_at",
            "mitigated_at",
            "sla",
            "events",
            "allowed_actions",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_instances(self, obj: Incident) -> list[str]:
        return sorted(instance.slug for instance in obj.instances.all())

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="null until one is given.")
    )
    def get_postmortem_url(self, obj: Incident) -> str | None:
        return obj.postmortem_url or None

    @extend_schema_field(IncidentSlaSerializer)
    def get_sla(self, obj: Incident) -> dict[str, Any]:
        return timers.sla_json(obj, self.context.get("now"))

    @extend_schema_field(
        serializers.ListField(
            child=serializers.ChoiceField(list(RULES)),
            allow_null=True,
            help_text="What the caller may do now; null in lists.",
        )
    )
    def get_allowed_actions(self, obj: Incident) -> list[str] | None:
        if not self.context.get("detail"):
            return None
        return workflow.allowed_actions(self.context["request"].user, obj)
