"""Releases of the product, what the feed last said, and the rollout waves that upgrade the
fleet to a release (docs/releases.md)."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from provisioning.models import VERSION_PATTERN, Instance
from releases.feed import normalize_version

# A version as people type it: a leading v is accepted (stored without).
RELEASE_VERSION = r"v?[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}"


class ReleaseKind(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    PATCH = "patch", "Patch"
    EMERGENCY = "emergency", "Emergency"


class ReleaseQuerySet(models.QuerySet["Release"]):
    def newest_first(self) -> "ReleaseQuerySet":
        return self.order_by("-major", "-minor", "-patch")

    def newest(self) -> "Release | None":
        return self.newest_first().first()

    def named(self, text: str) -> "Release | None":
        """The release a version names as people type it (`v6.2.0` or `6.2.0`), or None."""
        normal = normalize_version(text)
        return self.filter(version=normal).first() if normal else None


class Release(models.Model):
    """One release. "Newest" is the highest version, whatever the dates say; the version's
    numbers are columns so that the database orders them as numbers (6.10.0 after 6.9.0)."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Recorded by hand"
        FEED = "feed", "Releases feed"

    version = models.CharField(
        max_length=40,
        unique=True,
        validators=[RegexValidator(VERSION_PATTERN, "A version such as 6.2.0.")],
    )
    major = models.PositiveIntegerField(editable=False)
    minor = models.PositiveIntegerField(editable=False)
    patch = models.PositiveIntegerField(editable=False)
    kind = models.CharField(max_length=10, choices=ReleaseKind.choices)
    published_at = models.DateTimeField()
    notes_url = models.URLField(max_length=500, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-major", "-minor", "-patch"]
        constraints = [
            models.CheckConstraint(
                condition=Q(version__regex=VERSION_PATTERN), name="release_version_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ReleaseKind.values), name="release_kind_valid"
            ),
        ]
        indexes = [models.Index(fields=["-major", "-minor", "-patch"], name="release_order")]

    def __str__(self) -> str:
        return self.version

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


class FeedStatus(models.Model):
    """The one row that says what the releases feed last did: DevOps read it on the Releases
    page. `etag` makes the next poll a cheap 304 when nothing changed."""

    etag = models.CharField(max_length=200, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)  # the last good answer
    error = models.TextField(blank=True)  # the last failure's words; "" after a good answer
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "feed status"

    def __str__(self) -> str:
        return "releases feed"


class Wave(models.Model):
    """A batch of one release's upgrades that DevOps plan together and confirm with one press.
    At most ROLLOUT_MAX_PARALLEL of its runs apply at once; the first errored run halts it."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="waves")
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField()
    # Apply outside the instances' maintenance windows (DevOps' call, e.g. an emergency).
    override_window = models.BooleanField(default=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    halted_at = models.DateTimeField(null=True, blank=True)
    halt_reason = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["release", "number"]
        constraints = [
            models.UniqueConstraint(fields=["release", "number"], name="one_wave_number"),
        ]

    def __str__(self) -> str:
        return f"wave {self.number} of {self.release_id}"

    @property
    def is_open(self) -> bool:
        return self.halted_at is None and self.finished_at is None


class WaveItem(models.Model):
    """One instance of a wave and the upgrade request it carries."""

    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="items")
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey(
        "requests_app.Request", on_delete=models.PROTECT, related_name="wave_items"
    )
    position = models.PositiveIntegerField()
    from_version = models.CharField(max_length=40, blank=True)
    # When the owner was told (before the window) and after the upgrade.
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["wave", "position"]
        constraints = [
            models.UniqueConstraint(fields=["wave", "instance"], name="one_item_per_instance"),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} in {self.wave_id}"
