from datetime import datetime
from zoneinfo import available_timezones

from django import forms

from provisioning.models import WEEKDAYS, Instance
from releases.models import RELEASE_VERSION, ReleaseKind


class ReleaseForm(forms.Form):
    version = forms.RegexField(
        regex=rf"^{RELEASE_VERSION}$",
        max_length=40,
        error_messages={"invalid": "A version such as 6.2.0 (a leading v is accepted)."},
    )
    published_at = forms.DateTimeField(
        required=False,
        help_text="Empty: now. Without an offset it is read in the SLA time zone.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    emergency = forms.BooleanField(required=False, label="Emergency release")
    notes_url = forms.URLField(
        required=False, max_length=500, label="Release notes URL", assume_scheme="https"
    )

    def kind(self) -> str:
        return ReleaseKind.EMERGENCY if self.cleaned_data.get("emergency") else ""

    def published(self, now: datetime) -> datetime:
        return self.cleaned_data.get("published_at") or now


class WindowForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=[(z, z) for z in sorted(available_timezones())])
    maintenance_weekday = forms.TypedChoiceField(
        choices=[("", "Any time (no window)"), *WEEKDAYS],
        coerce=int,
        empty_value=None,
        required=False,
        label="Weekday",
    )

    class Meta:
        model = Instance
        fields = ["maintenance_weekday", "maintenance_start", "maintenance_end", "time_zone"]
        labels = {"maintenance_start": "From", "maintenance_end": "To"}
        widgets = {
            "maintenance_start": forms.TimeInput(attrs={"type": "time"}),
            "maintenance_end": forms.TimeInput(attrs={"type": "time"}),
        }

    def clean(self) -> dict:
        data = super().clean() or {}
        weekday = data.get("maintenance_weekday")
        start, end = data.get("maintenance_start"), data.get("maintenance_end")
        if weekday is None:
            data["maintenance_start"] = data["maintenance_end"] = None
        elif start is None or end is None:
            raise forms.ValidationError("A window needs its hours: from and to.")
        elif start == end:
            raise forms.ValidationError("A window of no hours: make 'to' differ from 'from'.")
        return data
