"""One form per request kind. The pages and the JSON API validate through these same forms, so
a request is judged by the same rules whichever way it arrives."""

import re
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from provisioning import instances, zones
from provisioning.models import Access, Category, Instance, InstanceStatus
from requests_app import validation
from requests_app.models import (
    PROVISIONING_KINDS,
    AccessScope,
    Kind,
    NonStandardReason,
    Request,
)


class ListField(forms.Field):
    """A list from JSON, or from text split on commas, spaces and new lines (the pages)."""

    def to_python(self, value: Any) -> list[str]:
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            return [item for item in re.split(r"[\s,]+", value) if item]
        if isinstance(value, list | tuple):
            if not all(isinstance(item, str) for item in value):
                raise forms.ValidationError("Give a list of strings.")
            return [item.strip() for item in value if item.strip()]
        raise forms.ValidationError("Give a list.")


class ReasonsField(forms.MultipleChoiceField):
    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value] if value else []
        return super().to_python(value)


class BaseRequestForm(forms.Form):
    kind: str | None = None  # set by each subclass
    customer = forms.CharField(max_length=200, required=False)
    instance = forms.CharField(max_length=30, label="Instance (slug)")
    justification = forms.CharField(widget=forms.Textarea, required=False)
    non_standard_reasons = ReasonsField(
        choices=NonStandardReason.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Any of these sends the request through Tech Review after approval.",
        label="Non-standard because of",
    )

    # Instance statuses that allow this kind (None: any live instance).
    allowed_statuses: tuple[str, ...] | None = None
    # The live instance clean_instance found (not set on a create form).
    instance_obj: Instance | None
    field_order = [
        "instance",
        "customer",
        "confirm",
        "target_version",
        "release_published_at",
        "justification",
        "non_standard_reasons",
    ]

    def __init__(self, *args: Any, editing: Request | None = None, **kwargs: Any) -> None:
        """`editing`: the request its requester is changing; its instance stays as filed."""
        super().__init__(*args, **kwargs)
        self.editing = editing
        if self.kind != Kind.CREATE:
            # The page never asks: the customer is the instance's (the API may repeat it).
            self.fields["customer"].widget = forms.HiddenInput()
        if editing is not None:
            self.fields["instance"].disabled = True
            self.fields["instance"].initial = editing.instance_slug
            self.fields["customer"].disabled = True
            self.fields["customer"].initial = editing.customer

    def _others(self) -> Any:
        found = Request.objects.open()
        return found.exclude(pk=self.editing.pk) if self.editing is not None else found

    def clean_instance(self) -> str:
        slug = self.cleaned_data["instance"].strip().lower()
        self.instance_obj = instances.live(slug)
        if self.instance_obj is None:
            raise forms.ValidationError(f"There is no instance {slug!r}.")
        if self.allowed_statuses and self.instance_obj.status not in self.allowed_statuses:
            allowed = " or ".join(InstanceStatus(s).label.lower() for s in self.allowed_statuses)
            raise forms.ValidationError(
                f"Instance {slug!r} is {self.instance_obj.get_status_display().lower()}; "
                f"a {self.kind} request needs it {allowed}."
            )
        self.check_no_conflict(slug)
        return slug

    def check_no_conflict(self, slug: str) -> None:
        if self.kind not in PROVISIONING_KINDS:
            return
        clash = (
            self._others()
            .filter(instance_slug=slug, kind__in=PROVISIONING_KINDS)
            .order_by("created_at")
            .first()
        )
        if clash:
            raise forms.ValidationError(
                f"Request #{clash.pk} ({clash.kind}, {clash.get_state_display().lower()}) is "
                f"already open for {slug!r}; finish or cancel it first."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        instance = getattr(self, "instance_obj", None)
        if instance is not None:
            # The customer of an existing instance is the instance's: taken from it, and a
            # different name is refused rather than spread into titles, mail and figures.
            given = (cleaned.get("customer") or "").strip()
            if given and given.casefold() != instance.customer.casefold():
                self.add_error(
                    "customer",
                    f"{instance.slug!r} belongs to {instance.customer!r}; leave the customer "
                    "empty or give that name.",
                )
            cleaned["customer"] = instance.customer
        if not cleaned.get("customer") and "customer" not in self.errors:
            self.add_error("customer", "Name the customer.")
        return cleaned


def category_field(**kwargs: Any) -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=Category.choices, widget=forms.RadioSelect, initial=Category.CUSTOMER, **kwargs
    )


class CreateRequestForm(BaseRequestForm):
    kind = Kind.CREATE
    instance = forms.CharField(
        max_length=30,
        label="New instance slug",
        help_text="Becomes the GCP project id <prefix>-<slug> and <slug>.<domain>; never changes.",
    )
    machine_type = forms.ChoiceField(
        choices=lambda: (
            [("", "Recommended for the users and repositories")] + validation.machine_type_choices()
        ),
        required=False,
    )
    field_order = [
        "instance",
        "customer",
        "category",
        "users",
        "repositories",
        "machine_type",
        "zone",
        "access",
        "allowed_ip_ranges",
        "target_version",
        "justification",
        "non_standard_reasons",
    ]
    # A select of Compute's zones on the page; the API takes the name (checked in clean_zone).
    zone = forms.CharField(
        max_length=40,
        initial=zones.DEFAULT_ZONE,
        required=False,
        widget=forms.Select(),
        help_text="Where the VM runs; from Compute's list of zones.",
    )
    category = category_field(
        required=False,
        help_text="Internal: the company's own (demos, tests); customer when left out.",
    )
    access = forms.ChoiceField(choices=Access.choices, initial=Access.PUBLIC_SSO, required=False)
    allowed_ip_ranges = ListField(
        required=False,
        label="Allowed IP ranges",
        help_text="CIDR ranges, one per line; required for an IP allowlist.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    users = forms.IntegerField(min_value=1, max_value=1_000_000, required=False)
    repositories = forms.IntegerField(min_value=0, max_value=10_000_000, required=False)
    target_version = forms.CharField(
        max_length=40, required=False, help_text="Release to install; empty: the latest."
    )

    def clean_instance(self) -> str:
        # Not lowercased: a new slug is checked as typed, so 'Acme' is refused, not renamed.
        slug = self.cleaned_data["instance"].strip()
        errors = validation.slug_errors(slug, settings.INSTANCE_PROJECT_PREFIX)
        if errors:
            raise forms.ValidationError(errors)
        if instances.live(slug) is not None:
            raise forms.ValidationError(f"An instance {slug!r} already exists.")
        clash = self._others().filter(kind=Kind.CREATE, instance_slug=slug).first()
        if clash:
            raise forms.ValidationError(
                f"Request #{clash.pk} already asks to create {slug!r} "
                f"({clash.get_state_display().lower()})."
            )
        return slug

    def __init__(self, *args: Any, editing: Request | None = None, **kwargs: Any) -> None:
        super().__init__(*args, editing=editing, **kwargs)
        zone_field = self.fields["zone"]
        assert isinstance(zone_field.widget, forms.Select)
        zone_field.widget.choices = [(z, z) for z in zones.zones()]

    def clean_zone(self) -> str:
        zone = self.cleaned_data["zone"].strip() or zones.DEFAULT_ZONE
        if not validation.ZONE.match(zone):
            raise forms.ValidationError(f"{zone!r} is not a GCP zone such as us-central1-f.")
        if zone not in zones.zones():
            raise forms.ValidationError(f"{zone!r} is not one of Compute's zones.")
        return zone

    def clean_target_version(self) -> str:
        version = self.cleaned_data["target_version"].strip()
        if version and validation.parse_version(version) is None:
            raise forms.ValidationError(f"{version!r} is not a version such as 5.3.1.")
        return version or settings.INSTANCE_DEFAULT_VERSION

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "access" in cleaned and not cleaned["access"]:
            cleaned["access"] = Access.PUBLIC_SSO
        if "category" in cleaned and not cleaned["category"]:
            cleaned["category"] = Category.CUSTOMER
        if cleaned.get("access") == Access.IP_ALLOWLIST and not cleaned.get("allowed_ip_ranges"):
            self.add_error("allowed_ip_ranges", "An IP allowlist needs at least one CIDR range.")
        errors = validation.cidr_errors(cleaned.get("allowed_ip_ranges") or [])
        if errors:
            self.add_error("allowed_ip_ranges", errors)
        users, repositories = cleaned.get("users"), cleaned.get("repositories")
        self.recommended_machine_type = validation.recommended_machine_type(users, repositories)
        if not cleaned.get("machine_type"):
            cleaned["machine_type"] = self.recommended_machine_type
        if validation.exceeds_standard_scale(users, repositories):
            reasons = list(cleaned.get("non_standard_reasons") or [])
            if NonStandardReason.SCALE not in reasons:
                reasons.append(NonStandardReason.SCALE)
            cleaned["non_standard_reasons"] = reasons
        return cleaned


class SuspendRequestForm(BaseRequestForm):
    kind = Kind.SUSPEND
    allowed_statuses = (InstanceStatus.ACTIVE,)


class ResumeRequestForm(BaseRequestForm):
    kind = Kind.RESUME
    allowed_statuses = (InstanceStatus.SUSPENDED,)


class TeardownRequestForm(BaseRequestForm):
    kind = Kind.TEARDOWN
    allowed_statuses = (InstanceStatus.ACTIVE, InstanceStatus.SUSPENDED)
    confirm = forms.CharField(
        max_length=30,
        label="Type the slug again to confirm",
        help_text="Teardown deletes the instance and its data for good.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        slug = cleaned.get("instance")
        if slug and cleaned.get("confirm", "").strip().lower() != slug:
            self.add_error("confirm", f"Type {slug!r} exactly to confirm the teardown.")
        return cleaned


class UpgradeRequestForm(BaseRequestForm):
    kind = Kind.UPGRADE
    allowed_statuses = (InstanceStatus.ACTIVE,)
    target_version = forms.CharField(max_length=40)
    release_published_at = forms.DateTimeField(
        required=False,
        help_text="When the release came out; the 7-day clock counts from it (empty: now).",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        version = (cleaned.get("target_version") or "").strip()
        target = validation.parse_version(version)
        if version and target is None:
            self.add_error("target_version", f"{version!r} is not a version such as 5.3.1.")
        instance = getattr(self, "instance_obj", None)
        running = validation.parse_version(instance.version) if instance else None
        if instance and target and running and target <= running:
            self.add_error(
                "target_version",
                f"{instance.slug!r} already runs {instance.version}; name a newer version.",
            )
        published = cleaned.get("release_published_at")
        if published and published > timezone.now():
            self.add_error("release_published_at", "The release date cannot be in the future.")
        return cleaned


class EnableExecutorsRequestForm(BaseRequestForm):
    kind = Kind.ENABLE_EXECUTORS
    allowed_statuses = (InstanceStatus.ACTIVE,)

    def clean_instance(self) -> str:
        slug = super().clean_instance()
        if self.instance_obj and self.instance_obj.executors_enabled:
            raise forms.ValidationError(f"Executors are already enabled on {slug!r}.")
        return slug


class FeatureRequestForm(BaseRequestForm):
    kind = Kind.FEATURE
    justification = forms.CharField(
        widget=forms.Textarea, label="What the customer needs", max_length=10_000
    )


class AccessRequestForm(BaseRequestForm):
    """Access for a person to the GCP projects or the Vault secrets of one instance, or of
    every instance of a category (no instance: then there is no customer either). A manager
    approves it; DevOps grants it and marks it done, which starts its expiry."""

    kind = Kind.ACCESS
    person = forms.CharField(
        max_length=254,
        help_text="Username or email address of the person who needs the access.",
    )
    scope = forms.ChoiceField(choices=AccessScope.choices, label="Access to")
    category = category_field(
        help_text="Without an instance: every instance of this category. With one: its category."
    )
    instance = forms.CharField(
        max_length=30,
        required=False,
        label="Instance",
        help_text="Empty: every instance of the category.",
        widget=forms.Select(),
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        help_text="Empty: 90 days after it is granted.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    justification = forms.CharField(
        widget=forms.Textarea, label="Why the access is needed", max_length=10_000
    )
    # Access has one decision, a manager's: no tech review, so nothing makes it non-standard.
    non_standard_reasons = None  # type: ignore[assignment]
    field_order = ["person", "scope", "category", "instance", "expires_at", "justification"]

    def __init__(self, *args: Any, editing: Request | None = None, **kwargs: Any) -> None:
        super().__init__(*args, editing=editing, **kwargs)
        self.fields[
            "expires_at"
        ].help_text = f"Empty: {settings.ACCESS_DEFAULT_DAYS} days after it is granted."
        instance_field = self.fields["instance"]
        if isinstance(instance_field.widget, forms.Select):
            live = Instance.objects.live().order_by("slug").only("slug", "customer", "category")
            instance_field.widget.choices = [("", "All instances of the category")] + [
                (i.slug, f"{i.slug} ({i.customer}, {i.category})") for i in live
            ]

    def clean_person(self) -> str:
        person = self.cleaned_data["person"].strip()
        if not validation.PERSON.match(person):
            raise forms.ValidationError("Give a username or an email address (name@example.com).")
        return person

    def clean_instance(self) -> str:
        self.instance_obj = None
        if not (self.cleaned_data.get("instance") or "").strip():
            return ""
        return super().clean_instance()

    def clean_expires_at(self) -> Any:
        expires = self.cleaned_data["expires_at"]
        if expires is not None and expires <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires

    def clean(self) -> dict[str, Any]:
        instance = getattr(self, "instance_obj", None)
        if instance is not None:
            cleaned = super().clean()  # the customer is the instance's
        else:
            # Every instance of a category (or an instance not found): no one customer.
            found = forms.Form.clean(self)
            assert found is not None  # Form.clean returns cleaned_data
            cleaned = found
            if "instance" not in self.errors and (cleaned.get("customer") or "").strip():
                self.add_error(
                    "customer",
                    "Access to every instance of a category names no customer; name an "
                    "instance, or leave the customer empty.",
                )
            cleaned["customer"] = ""
        category = cleaned.get("category")
        if instance is not None and category and category != instance.category:
            self.add_error(
                "category",
                f"{instance.slug!r} is one of the {instance.category} instances, not "
                f"{category}; choose {instance.category} or another instance.",
            )
        return cleaned


FORMS: dict[str | None, type[BaseRequestForm]] = {
    form.kind: form
    for form in [
        CreateRequestForm,
        SuspendRequestForm,
        ResumeRequestForm,
        TeardownRequestForm,
        UpgradeRequestForm,
        EnableExecutorsRequestForm,
        FeatureRequestForm,
        AccessRequestForm,
    ]
}


class ActionForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    confirm = forms.CharField(max_length=30, required=False)
    due_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    # `assign`: the username of the DevOps member who is to hold the request; blank: nobody.
    assignee = forms.CharField(max_length=150, required=False)


class CommentForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000)
