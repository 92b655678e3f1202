"""Releases recorded (by hand or from the feed) and the upgrade requests the newest one opens.

The rule (docs/releases.md): every `active` instance older than the newest release has one open
upgrade to it, filed by the user `portal` and queued without approval. An older upgrade not yet
applying is superseded; one that is applying finishes, and the newer one opens when it ends (the
`request_ended` hook calls `reconcile_instance`). A suspended instance gets its upgrade when it is
resumed. Each instance is decided under its row lock, so repeated syncs and two workers at once
open one request per instance.
"""

import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal import roles
from provisioning.models import Instance, InstanceStatus
from releases.feed import normalize_version, parse_version, release_kind
from releases.models import Release, ReleaseKind
from requests_app import notifications, workflow
from requests_app.models import OPEN_STATES, PROVISIONING_KINDS, Kind, Request

log = logging.getLogger(__name__)
PORTAL_USERNAME = "portal"


def portal_user() -> User:
    """The portal's own user, who files maintenance: no usable password, no group. A data
    migration makes it; made here too where a test database was flushed."""
    user, created = get_user_model().objects.get_or_create(
        username=PORTAL_USERNAME, defaults={"first_name": "Portal", "is_active": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


class ReleaseInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


def record(
    version: str,
    published_at: datetime,
    *,
    emergency: bool = False,
    notes_url: str = "",
    source: str = Release.Source.MANUAL,
    user: User | None = None,
    now: datetime | None = None,
    open_requests: bool = True,
) -> tuple[Release, bool]:
    """Record a release once (`v6.2.0` and `6.2.0` are one). Returns (release, created). A new
    newest release opens the fleet's upgrades; its kind comes from the version below it."""
    now = now or timezone.now()
    normal = normalize_version(version)
    if normal is None:
        raise ReleaseInvalid({"version": [f"{version!r} is not a version such as 6.2.0."]})
    major, minor, patch = parse_version(normal) or (0, 0, 0)
    existing = Release.objects.filter(version=normal).first()
    if existing is not None:
        return existing, False
    below = (
        Release.objects.filter(major__lte=major)
        .exclude(major=major, minor__gt=minor)
        .exclude(major=major, minor=minor, patch__gte=patch)
        .newest()
    )
    previous = below.version if below else None
    kind = ReleaseKind.EMERGENCY if emergency else release_kind(previous, normal)
    try:
        with transaction.atomic():
            release = Release.objects.create(
                version=normal,
                major=major,
                minor=minor,
                patch=patch,
                kind=kind,
                published_at=published_at,
                notes_url=notes_url,
                source=source,
                created_by=user,
                created_at=now,
            )
    except IntegrityError:  # recorded at the same moment by someone else (two syncs)
        return Release.objects.get(version=normal), False
    log.info("release %s recorded (%s, %s)", normal, kind, source)
    if open_requests and Release.objects.newest() == release:
        opened = open_upgrades(now)
        announce(release, opened, now)
    return release, True


def behind(instance_version: str, release: Release) -> bool:
    key = parse_version(instance_version or "")
    return key is not None and key < release.key


def open_upgrades(now: datetime | None = None) -> list[Request]:
    """Make the rule hold for the whole fleet; returns the requests opened. Cheap when nothing
    is missing: one query finds the instances that may need a decision."""
    now = now or timezone.now()
    newest = Release.objects.newest()
    if newest is None:
        return []
    # Instances that have (or had: a person cancelled it) their upgrade to the newest.
    waiting = set(
        Request.objects.filter(kind=Kind.UPGRADE, target_version=newest.version).values_list(
            "instance_id", flat=True
        )
    )
    candidates = [
        pk
        for pk, version in Instance.objects.filter(status=InstanceStatus.ACTIVE).values_list(
            "pk", "version"
        )
        if pk not in waiting and behind(version, newest)
    ]
    opened = []
    for pk in candidates:
        request = reconcile_instance(pk, now=now, newest=newest)
        if request is not None:
            opened.append(request)
    return opened


def reconcile_instance(
    instance_id: int, *, now: datetime | None = None, newest: Release | None = None
) -> Request | None:
    """Open the upgrade this instance is missing, if it may have one now; returns it."""
    now = now or timezone.now()
    newest = newest or Release.objects.newest()
    if newest is None:
        return None
    portal = portal_user()
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=instance_id).first()
        if instance is None or instance.status != InstanceStatus.ACTIVE:
            return None
        if not behind(instance.version, newest):
            return None
        if (
            Request.objects.filter(
                instance=instance, kind=Kind.UPGRADE, target_version=newest.version
            )
            .exclude(state__in=OPEN_STATES)
            .exists()
        ):
            return None  # a person cancelled (or finished) this one: it is not reopened
        current = Request.objects.filter(
            instance_slug=instance.slug, kind__in=PROVISIONING_KINDS, state__in=OPEN_STATES
        ).first()
        if current is not None:
            if current.kind != Kind.UPGRADE:
                return None  # another change first; the upgrade opens when it ends
            target = parse_version(current.target_version)
            if target is not None and target >= newest.key:
                return None  # already on its way there
            if not workflow.supersede(current.pk, newest.version, portal, now):
                return None  # applying: it finishes, then this opens
        return workflow.file_maintenance_upgrade(
            portal,
            instance,
            newest.version,
            newest.published_at,
            now,
            why=f"Maintenance: upgrade from {instance.version} to release {newest.version} "
            f"({newest.get_kind_display().lower()}, published {newest.published_at:%Y-%m-%d}).",
        )


def announce(release: Release, opened: list[Request], now: datetime) -> None:
    """One message to DevOps for the release, not one per instance."""
    if not opened:
        return
    due = opened[0].resolution_due_at  # the upgrade policy's clock, from publication
    subject = (
        f"Release {release.version} ({release.get_kind_display().lower()}): "
        f"{len(opened)} upgrade{'s' if len(opened) != 1 else ''} queued"
        + (f", due {timezone.localtime(due):%Y-%m-%d %H:%M %Z}" if due else "")
    )
    lines = [subject, ""] + [f"- #{r.pk} {r.instance_slug} ({r.customer})" for r in opened]
    lines += ["", notifications.link_to("release_detail", release.version)]
    notifications.notify(
        subject, "\n".join(lines), notifications.group_emails(roles.DEVOPS), now, topic="release"
    )
