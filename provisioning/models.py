from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


class InstanceStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    TORN_DOWN = "torn_down", "Torn down"
    FAILED = "failed", "Failed"


class Access(models.TextChoices):
    PUBLIC_SSO = "public_sso", "Public, behind the customer's SSO"
    IP_ALLOWLIST = "ip_allowlist", "Restricted to an IP allowlist"


class Category(models.TextChoices):
    """Whom an instance serves: a customer, or the company itself (demos, tests, dogfooding).
    Access requests name a category when they cover every instance of it."""

    CUSTOMER = "customer", "Customer"
    INTERNAL = "internal", "Internal"


# On-demand prices with sustained-use discount, us-central1, per month.
MACHINE_TYPES = {
    "n1-standard-8": {"vcpus": 8, "memory_gb": 30, "monthly_usd": 194},
    "n1-standard-16": {"vcpus": 16, "memory_gb": 60, "monthly_usd": 388},
    "n1-standard-32": {"vcpus": 32, "memory_gb": 120, "monthly_usd": 777},
    "n1-standard-96": {"vcpus": 96, "memory_gb": 360, "monthly_usd": 2330},
}
# django-stubs types the functional API for a space-separated string of names only, not for
# the (value, label) pairs Django also takes.
MachineType = models.TextChoices(  # type: ignore[call-overload]
    "MachineType", [(name, name) for name in MACHINE_TYPES]
)


# Naming rules of GCP that an instance must keep wherever it comes from (forms, the importer,
# fleet adoption, the admin): the database checks them too.
SLUG_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
PROJECT_ID_PATTERN = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"  # 6-30 characters
VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+$"  # stored without a leading v
ZONE_PATTERN = r"^[a-z]+-[a-z]+[0-9]+-[a-z]$"


WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a time zone (such as Europe/Berlin).") from None


class InstanceQuerySet(models.QuerySet["Instance"]):
    def live(self) -> "InstanceQuerySet":
        """Instances not torn down: a slug names at most one of them."""
        return self.exclude(status=InstanceStatus.TORN_DOWN)


class Instance(models.Model):
    """One customer's managed instance: a GCP project with one VM running the product."""

    slug = models.CharField(
        max_length=28,
        validators=[RegexValidator(SLUG_PATTERN, "Lowercase letters, digits and hyphens.")],
    )
    customer = models.CharField(max_length=200)
    # Set from the create request that made it (customer unless it asked for internal).
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.CUSTOMER)
    status = models.CharField(
        max_length=20, choices=InstanceStatus.choices, default=InstanceStatus.PROVISIONING
    )
    gcp_project = models.CharField(
        max_length=30,
        validators=[RegexValidator(PROJECT_ID_PATTERN, "Not a valid GCP project id.")],
    )
    zone = models.CharField(
        max_length=40,
        default="us-central1-f",
        validators=[RegexValidator(ZONE_PATTERN, "Not a GCP zone (such as us-central1-f).")],
    )
    machine_type = models.CharField(
        max_length=40, choices=MachineType.choices, default="n1-standard-8"
    )
    version = models.CharField(
        max_length=40,
        blank=True,
        validators=[RegexValidator(VERSION_PATTERN, "A release such as 6.1.0.")],
    )
    access = models.CharField(max_length=20, choices=Access.choices, default=Access.PUBLIC_SSO)
    allowed_ip_ranges = models.JSONField(default=list, blank=True)
    executors_enabled = models.BooleanField(default=False)
    url = models.URLField(blank=True)
    users = models.PositiveIntegerField(null=True, blank=True)
    repositories = models.PositiveIntegerField(null=True, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    # What the last verification found that disagrees with the portal's record (None: nothing):
    # {"found_at", "problems": [...], "plan": {...}}. Set only by provisioning/verify.py.
    drift = models.JSONField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # When a rollout may upgrade it (an upgrade interrupts it for about 1.5 minutes): one
    # weekday and its hours in the instance's own time zone; an end at or before the start runs
    # past midnight. No weekday: any time.
    maintenance_weekday = models.PositiveSmallIntegerField(null=True, blank=True, choices=WEEKDAYS)
    maintenance_start = models.TimeField(null=True, blank=True)
    maintenance_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # Fleet adoption (`import_fleet`): when the instance was first read from the Terraform folder
    # of an older set-up, and which folder. Until its first run applies, its resources are in no
    # Terraform state of the portal's: that run imports them (provisioning/adoption/imports.py).
    adopted_at = models.DateTimeField(null=True, blank=True)
    adopted_from = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(slug__regex=SLUG_PATTERN), name="instance_slug_valid"
            ),
            models.CheckConstraint(
                condition=Q(gcp_project__regex=PROJECT_ID_PATTERN), name="instance_project_valid"
            ),
            models.CheckConstraint(
                condition=Q(version="") | Q(version__regex=VERSION_PATTERN),
                name="instance_version_valid",
            ),
            models.CheckConstraint(
                condition=Q(zone__regex=ZONE_PATTERN), name="instance_zone_valid"
            ),
            models.CheckConstraint(
                condition=Q(machine_type__in=list(MACHINE_TYPES)),
                name="instance_machine_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InstanceStatus.values), name="instance_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(category__in=Category.values), name="instance_category_valid"
            ),
            models.CheckConstraint(
                condition=Q(
                    maintenance_weekday__isnull=True,
                    maintenance_start__isnull=True,
                    maintenance_end__isnull=True,
                )
                | Q(
                    maintenance_weekday__gte=0,
                    maintenance_weekday__lte=6,
                    maintenance_start__isnull=False,
                    maintenance_end__isnull=False,
                ),
                name="instance_maintenance_window_whole",
            ),
            # A slug names one live instance; a torn-down one frees it for reuse.
            models.UniqueConstraint(
                fields=["slug"],
                condition=~Q(status=InstanceStatus.TORN_DOWN),
                name="instance_slug_unique_while_live",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def monthly_cost_usd(self) -> int:
        return monthly_cost(self)

    def awaits_import(self) -> bool:
        """Adopted, and no run has applied since: the portal's Terraform state does not hold its
        resources yet, and its next run imports them instead of creating them."""
        return self.adopted_at is not None and not self.runs.filter(state=RunState.APPLIED).exists()


# What an instance costs a month, the one figure every page shows (the instance page, the fleet
# page and its totals). GCP list prices (us-central1, on demand with sustained-use discount): the
# machine type's price plus $282 of storage (the first 250 GB) plus $56 of network before traffic.
# Traffic ($1.54/GB) and executors are not known to the portal and are left out: a floor.
STORAGE_USD = 282
NETWORK_USD = 56
# A suspended instance keeps only its project and the latest snapshot of a data disk of at most
# 250 GB. The price list used gives no snapshot price; GCP's standard snapshot storage is about
# $0.05/GB-month, so 250 GB is about $13 (an estimate, marked as such on the pages).
SNAPSHOT_USD = 13


def monthly_cost(instance: Instance) -> int:
    """Estimated USD a month: nothing once torn down, the snapshot's storage while suspended,
    and otherwise the machine, its storage and network. A failed or provisioning instance is
    counted as running (it may hold its VM and disk until someone fixes or tears it down)."""
    if instance.status == InstanceStatus.TORN_DOWN:
        return 0
    if instance.status == InstanceStatus.SUSPENDED:
        return SNAPSHOT_USD
    machine = MACHINE_TYPES.get(instance.machine_type, {}).get("monthly_usd", 0)
    return machine + STORAGE_USD + NETWORK_USD


def project_id_for(slug: str) -> str:
    return f"{settings.INSTANCE_PROJECT_PREFIX}-{slug}"


def url_for(slug: str) -> str:
    return f"https://{slug}.{settings.INSTANCE_DOMAIN}"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    PLANNING = "planning", "Planning"
    PLANNED = "planned", "Planned (waiting for confirm)"
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    ERRORED = "errored", "Errored"
    DISCARDED = "discarded", "Discarded"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.PLANNING, RunState.PLANNED, RunState.APPLYING)
FINAL_RUN_STATES = (RunState.APPLIED, RunState.ERRORED, RunState.DISCARDED)
# A request that ends (cancel, reject) takes its run with it while nothing is applied yet.
DISCARDABLE_RUN_STATES = (RunState.QUEUED, RunState.PLANNING, RunState.PLANNED)


class Run(models.Model):
    """One provisioning run of one request on one instance. The row is the truth; RQ carries
    only its id. `job_wanted` says which job the run waits for (plan or apply) until a worker
    claims it, so a relay can enqueue again what never reached Redis."""

    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="runs")
    # requests_app.Request (no import); none for runs the portal starts itself (the demo seed).
    request_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    kind = models.CharField(max_length=20)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.QUEUED)
    job_wanted = models.CharField(max_length=10, blank=True)  # "plan", "apply" or ""
    enqueued_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict)  # the Terraform variables of the plan
    inputs_digest = models.CharField(max_length=64, blank=True)
    destroy = models.BooleanField(default=False)
    plan_binary = models.BinaryField(null=True, blank=True, editable=False)
    plan_text = models.TextField(blank=True)
    # {"add", "change", "destroy", "destroyed": [addresses], "data_destroyed", "violations"}
    plan_summary = models.JSONField(default=dict, blank=True)
    plan_json = models.JSONField(default=dict, blank=True)  # `terraform show -json` of the plan
    steps = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    workaround = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # At most one active run per instance: no two Terraform runs on one workspace.
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(state__in=[s.value for s in ACTIVE_RUN_STATES]),
                name="one_active_run_per_instance",
            )
        ]
        indexes = [
            models.Index(
                fields=["state", "heartbeat_at"],
                name="run_active_heartbeat",
                condition=Q(state__in=["queued", "planning", "planned", "applying"]),
            )
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.kind}) of {self.instance_id}: {self.state}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    # -- moves: every change of `state` happens here ---------------------------------------------
    # Each is one conditional UPDATE that returns whether it won (the row was still in the state
    # the move starts from); the loser changes nothing. On success the instance is refreshed.

    def _move(self, conditions: dict[str, Any], **changes: Any) -> bool:
        won = bool(Run.objects.filter(pk=self.pk, **conditions).update(**changes))
        if won:
            self.refresh_from_db()
        return won

    def claim(self, wanted: str, worker: str, now: datetime) -> bool:
        """A worker takes the job the run waits for: queued -> planning, or applying (after
        confirm) -> applying with a heartbeat."""
        return self._move(
            {"job_wanted": wanted},
            job_wanted="",
            state=RunState.PLANNING if wanted == "plan" else RunState.APPLYING,
            heartbeat_at=now,
            worker=worker,
            started_at=now,
        )

    def mark_planned(
        self,
        plan_binary: bytes,
        plan_text: str,
        summary: dict[str, Any],
        digest: str,
        plan_json: dict[str, Any] | None = None,
    ) -> bool:
        """planning -> planned: the saved plan waits for a confirm."""
        return self._move(
            {"state": RunState.PLANNING},
            state=RunState.PLANNED,
            plan_binary=plan_binary,
            plan_text=plan_text,
            plan_summary=summary,
            plan_json=plan_json or {},
            inputs_digest=digest,
            finished_at=None,
        )

    def confirm(self, user: Any) -> bool:
        """planned -> applying: the saved plan waits for a worker to apply it."""
        return self._move(
            {"state": RunState.PLANNED},
            state=RunState.APPLYING,
            job_wanted="apply",
            confirmed_by=user,
            enqueued_at=None,
            heartbeat_at=None,
        )

    def discard(self, now: datetime) -> bool:
        """queued, planning or planned -> discarded: nothing was applied. A worker still planning
        finds the run discarded when it tries to save its plan, and a queued job finds nothing
        to claim."""
        return self._move(
            {"state__in": DISCARDABLE_RUN_STATES},
            state=RunState.DISCARDED,
            job_wanted="",
            finished_at=now,
        )

    def apply_started(self) -> bool:
        """Whether this run ever began to apply (so the infrastructure may have changed)."""
        if self.state in (RunState.APPLYING, RunState.APPLIED):
            return True
        return any(s["name"] == "apply" and s["status"] != "pending" for s in self.steps or [])

    def needs_second_person(self) -> bool:
        """A teardown, or a plan that destroys data no snapshot of this run keeps: the confirm
        must come from someone other than the person who planned it."""
        if self.kind == "teardown":
            return True
        keeps_snapshot = self.kind in ("suspend", "upgrade")
        return bool((self.plan_summary or {}).get("data_destroyed")) and not keeps_snapshot

    def destroyed(self) -> list[str]:
        """The resources the saved plan destroys (or replaces), by address."""
        return list((self.plan_summary or {}).get("destroyed") or [])

    def mark_applied(self, outputs: dict[str, Any], now: datetime) -> bool:
        """applying -> applied. Loses when the reconciler ended the run meanwhile (its worker was
        taken for dead): a straggler never brings a run back."""
        return self._move(
            {"state": RunState.APPLYING},
            state=RunState.APPLIED,
            outputs=outputs,
            finished_at=now,
        )

    def mark_errored(
        self,
        from_state: str,
        now: datetime,
        error: str,
        code: str = "",
        workaround: str = "",
        steps: list[dict[str, Any]] | None = None,
    ) -> bool:
        """`from_state` -> errored, with the reason and, for a known failure, its workaround."""
        changes: dict[str, Any] = {
            "state": RunState.ERRORED,
            "finished_at": now,
            "error": error,
            "error_code": code,
            "workaround": workaround,
            "job_wanted": "",
        }
        if steps is not None:
            changes["steps"] = steps
        return self._move({"state": from_state}, **changes)

    def reconcile(self, now: datetime, reason: str) -> bool:
        """End a run whose worker stopped beating; loses if the worker beat again meanwhile."""
        return self._move(
            {"state": self.state, "heartbeat_at": self.heartbeat_at},
            state=RunState.ERRORED,
            finished_at=now,
            error=reason,
            error_code="worker_lost",
            workaround="Retry the run: Terraform converges from the state the dead run left.",
        )
