"""Validation shared by the pages and the API (whose JSON is first held to its schema in
incidents/serializers.py)."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from incidents.models import Severity
from provisioning.models import Instance

TITLE_MAX = 200
TEXT_MAX = 10_000
URL_MAX = 500
INSTANCES_MAX = 50


class InstancesField(forms.ModelMultipleChoiceField):
    """Live instances named by slug (the API's list, the page's multi-select)."""

    default_error_messages = {
        "invalid_choice": "There is no live instance %(value)r.",
        "invalid_list": "Give a list of instance slugs.",
        "required": "Name at least one affected instance.",
    }

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            # A NUL cannot be stored, nor compared by PostgreSQL: no slug has one.
            if any(not isinstance(v, str) or "\x00" in v for v in value):
                raise ValidationError(self.error_messages["invalid_list"], code="invalid_list")
            if len(value) > INSTANCES_MAX:
                raise ValidationError(f"At most {INSTANCES_MAX} instances.", code="too_many")
            value = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        return super().clean(value)

    def label_from_instance(self, obj: Instance) -> str:
        return f"{obj.slug} ({obj.customer})"


class IncidentForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX)
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.SEV2)
    instances = InstancesField(
        queryset=Instance.objects.live().order_by("slug"),
        to_field_name="slug",
        label="Affected instances",
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Ctrl- or Cmd-click to choose several.",
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=TEXT_MAX,
        required=False,
        help_text="What is wrong, since when, who is affected.",
    )


class IncidentActionForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=TEXT_MAX, required=False
    )
    postmortem_url = forms.URLField(
        max_length=URL_MAX, required=False, assume_scheme="https", label="Postmortem URL"
    )
    # `commander`: the username of the DevOps member who leads the response; blank: nobody.
    commander = forms.CharField(max_length=150, required=False)


class IncidentUpdateForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=TEXT_MAX)
