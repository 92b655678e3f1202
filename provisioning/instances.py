"""Finding and making instances: the one place that creates or updates an `Instance` row from a
request, an import or the demo seed, so defaults (project id, URL) live in one place."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.models import Instance, InstanceStatus, project_id_for, url_for


class InstanceExists(Exception):
    """A live instance already has this slug."""


class InstanceInvalid(ValueError):
    """The instance would break a naming rule (slug, project id, zone, version, machine type)."""


def live(slug: str) -> Instance | None:
    """The instance `slug` names now (not torn down), if any."""
    return Instance.objects.live().filter(slug=slug).first()


def latest(slug: str) -> Instance | None:
    """The live instance `slug`, else the latest torn-down one (a slug may be reused)."""
    return live(slug) or Instance.objects.filter(slug=slug).order_by("-created_at").first()


def ever_existed(slug: str) -> bool:
    return Instance.objects.filter(slug=slug).exists()


def create(slug: str, customer: str, status: str, **fields: Any) -> Instance:
    """A new live instance with its GCP project and URL (`<prefix>-<slug>` and
    `https://<slug>.<domain>` unless `fields` name others: an adopted instance keeps those it
    has); InstanceExists when `slug` is live, InstanceInvalid (naming which fields) when it would
    break a naming rule."""
    values = {"gcp_project": project_id_for(slug), "url": url_for(slug), **fields}
    instance = Instance(slug=slug, customer=customer, status=status, **values)
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problems = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
        raise InstanceInvalid(f"Instance {slug!r} would be invalid ({problems}).") from None
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
            return instance
    except IntegrityError:
        raise InstanceExists(f"An instance {slug!r} already exists.") from None


def get_or_create(slug: str, customer: str, status: str, **fields: Any) -> tuple[Instance, bool]:
    """The live instance `slug` as it is, or a new one made with these fields."""
    found = live(slug)
    if found is not None:
        return found, False
    try:
        return create(slug, customer, status, **fields), True
    except InstanceExists:
        # Made by someone else between the lookup and the insert.
        found = live(slug)
        if found is None:
            raise
        return found, False


def update(instance: Instance, *, validate: bool = False, **fields: Any) -> Instance:
    """Set the given fields on an instance and save them; with `validate`, InstanceInvalid
    (naming which fields) instead when they would break a naming rule."""
    for name, value in fields.items():
        setattr(instance, name, value)
    if validate:
        try:
            instance.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            problems = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
            raise InstanceInvalid(
                f"Instance {instance.slug!r} would be invalid ({problems})."
            ) from None
    instance.save()
    return instance


def release_unbuilt(instance: Instance) -> bool:
    """A create request ended before anything was built: its instance row, made when the
    create was first planned, must not stay in the fleet as provisioning or failed. When no run
    of it ever began to apply, it is marked torn down (the slug is free again)."""
    if instance.status not in (InstanceStatus.PROVISIONING, InstanceStatus.FAILED):
        return False
    if any(run.apply_started() for run in instance.runs.all()):
        return False  # something may exist in GCP: a teardown request cleans it up
    instance.status = InstanceStatus.TORN_DOWN
    instance.outputs = {**(instance.outputs or {}), "never_built": True}
    instance.save(update_fields=["status", "outputs", "updated_at"])
    return True
