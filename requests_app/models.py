from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Count, F, Index, IntegerField, Manager, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Upper

from provisioning.models import Access, Category, Instance
from requests_app.sla import next_alert


class Kind(models.TextChoices):
    CREATE = "create", "Create an instance"
    SUSPEND = "suspend", "Suspend an instance"
    RESUME = "resume", "Resume an instance"
    TEARDOWN = "teardown", "Tear down an instance"
    UPGRADE = "upgrade", "Upgrade an instance"
    ENABLE_EXECUTORS = "enable_executors", "Enable executors"
    FEATURE = "feature", "Feature request"
    ACCESS = "access", "Access"


class AccessScope(models.TextChoices):
    """What an access request grants: the GCP projects of managed instances, or their secrets."""

    GCP_MANAGED = "gcp-managed", "GCP (the instances' projects)"
    VAULT = "vault", "Vault (the instances' secrets)"


class State(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    TECH_REVIEW = "tech_review", "Tech review"
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "In progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer", "Waiting on customer"
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class NonStandardReason(models.TextChoices):
    MIGRATION = "migration", "Migration"
    SCALE = "scale", "Special scale"
    SECURITY = "security", "Special security needs"
    OTHER = "other", "Other"


OPEN_STATES = (
    State.PENDING_APPROVAL,
    State.TECH_REVIEW,
    State.QUEUED,
    State.IN_PROGRESS,
    State.WAITING_ON_CUSTOMER,
)
FINAL_STATES = (State.DONE, State.REJECTED, State.CANCELLED)
# Kinds that change an instance's infrastructure: at most one open at a time per instance.
PROVISIONING_KINDS = (
    Kind.CREATE,
    Kind.SUSPEND,
    Kind.RESUME,
    Kind.TEARDOWN,
    Kind.UPGRADE,
    Kind.ENABLE_EXECUTORS,
)


class RequestQuerySet(models.QuerySet["Request"]):
    def open(self) -> "RequestQuerySet":
        return self.filter(state__in=OPEN_STATES)

    def with_related(self) -> "RequestQuerySet":
        return self.select_related("requested_by", "assignee", "instance", "granted_by")


_RequestManager = Manager.from_queryset(RequestQuerySet)


def open_requests_of_instance() -> Coalesce:
    """An Instance annotation: how many open requests it has, by a subquery over the open states
    (index request_instance_state), not a join of every request grouped afterwards."""
    counted = (
        Request.objects.filter(instance=OuterRef("pk"), state__in=OPEN_STATES)
        .order_by()
        .values("instance")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class RequestManager(_RequestManager["Request"]):
    """`Request.objects`: rows come without `search_vector`, which triggers write (migration
    0006_request_search) and only queries read (requests_app/search.py). It can be large, no
    page shows it, and an instance loaded without it saves only the fields it loaded, so a save
    never writes a stale vector back."""

    def get_queryset(self) -> RequestQuerySet:
        queryset = super().get_queryset()
        assert isinstance(queryset, RequestQuerySet)  # from_queryset's (the stubs say QuerySet)
        return queryset.defer("search_vector")


class SearchVectorIndex(GinIndex):
    """A GIN index (what `@@` searches use) on PostgreSQL. On SQLite, where the column stays
    empty and the search falls back to `icontains`, a plain index: SQLite has no GIN, and its
    table rebuilds in later migrations recreate every index of the model."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return Index.create_sql(self, model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class Request(models.Model):
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Indexed by Meta.indexes (request_queue_order leads with it): a field index would add a
    # second copy and a LIKE index nothing uses.
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING_APPROVAL)
    customer = models.CharField(max_length=200)
    # The slug as asked for; `instance` links the instance once it exists (for create: once
    # provisioning starts or the request is done).
    instance_slug = models.CharField(max_length=30)
    instance = models.ForeignKey(
        Instance,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        db_index=False,  # request_instance_state leads with it
    )
    justification = models.TextField(blank=True)
    non_standard_reasons = models.JSONField(default=list, blank=True)
    standard = models.BooleanField(default=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests_filed"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests_assigned",
    )
    # Unique where set (Meta.constraints): the requests filed here have none.
    external_id = models.CharField(max_length=100, null=True, blank=True)
    # Bumped by every action: the compare-and-set of an action is on (state, version), so of two
    # actions judged against the same request one wins, even when neither changes the state
    # (confirm, plan, assign...).
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    # create
    machine_type = models.CharField(max_length=40, blank=True)
    zone = models.CharField(max_length=40, blank=True)
    access = models.CharField(max_length=20, choices=Access.choices, blank=True)
    allowed_ip_ranges = models.JSONField(default=list, blank=True)
    users = models.PositiveIntegerField(null=True, blank=True)
    repositories = models.PositiveIntegerField(null=True, blank=True)
    # upgrade (and the version a create installs)
    target_version = models.CharField(max_length=40, blank=True)
    release_published_at = models.DateTimeField(null=True, blank=True)
    # feature: the due date DevOps agrees with set_target
    target_due_at = models.DateTimeField(null=True, blank=True)
    # The instance's category (create: the one asked for; access: the one asked for, which an
    # access without an instance covers whole).
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.CUSTOMER)
    # access: who needs it (a username or an email) and to what. `expires_at` is the expiry
    # asked for (none: ACCESS_DEFAULT_DAYS after the grant) until `complete` grants it, then
    # the grant's own.
    person = models.CharField(max_length=254, blank=True)
    scope = models.CharField(max_length=20, choices=AccessScope.choices, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    granted_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="access_granted",
        db_index=False,  # request_granted_by: only the grants
    )

    # SLA timers (requests_app/sla/timers.py keeps them): start, stop, and the stored due, 75%
    # and breach instants that the sweep, the filters and the dashboards read; they count closed
    # pauses only (while a pause is open they are those the timer had when it was paused).
    response_started_at = models.DateTimeField(null=True, blank=True)
    response_stopped_at = models.DateTimeField(null=True, blank=True)
    response_due_at = models.DateTimeField(null=True, blank=True)
    response_warn_at = models.DateTimeField(null=True, blank=True)
    # After this instant the timer is breached (elapsed > target): every surface reads it.
    response_breach_at = models.DateTimeField(null=True, blank=True)
    response_warned_at = models.DateTimeField(null=True, blank=True)
    response_breach_alerted_at = models.DateTimeField(null=True, blank=True)
    resolution_started_at = models.DateTimeField(null=True, blank=True)
    resolution_stopped_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    resolution_warn_at = models.DateTimeField(null=True, blank=True)
    resolution_breach_at = models.DateTimeField(null=True, blank=True)
    resolution_warned_at = models.DateTimeField(null=True, blank=True)
    resolution_breach_alerted_at = models.DateTimeField(null=True, blank=True)
    # [[paused_at, resumed_at or null], ...] in ISO 8601; paused_at: the open pause's start.
    resolution_pauses = models.JSONField(default=list, blank=True)
    resolution_paused_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)  # reached done, rejected or cancelled

    # The full-text search of `?q=` (requests_app/search.py): instance slug and customer
    # (weight A), justification (B), comment bodies (C). PostgreSQL triggers keep it (migration
    # 0006_request_search); nothing in Python writes it, and on SQLite it stays empty.
    search_vector = SearchVectorField(null=True, editable=False)

    objects = RequestManager()

    # Not columns: set on the rows a page shows by requests_app.views.with_timers.
    sla: dict[str, Any]
    working: dict[str, bool]

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # No two open requests that change the same instance's infrastructure at once.
            models.UniqueConstraint(
                fields=["instance_slug"],
                condition=Q(
                    kind__in=[k.value for k in PROVISIONING_KINDS],
                    state__in=[s.value for s in OPEN_STATES],
                ),
                name="one_open_provisioning_request_per_instance",
            ),
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="request_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in Kind]), name="request_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=[s.value for s in State]), name="request_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(category__in=Category.values), name="request_category_valid"
            ),
        ]
        # Every write of an indexed column (each transition, each timer recompute) adds an entry
        # to every index whose condition the row meets: keep them few, and partial where most
        # rows have nothing to find (bench/sla.py measures the cost).
        indexes = [
            models.Index(fields=["kind", "state"], name="request_kind_state"),
            # The list's order (page and API): newest first, read from the index, not sorted.
            models.Index(F("created_at").desc(), F("id").desc(), name="request_created_desc"),
            # The DevOps queue: each state's most urgent first (views.devops_queue's by_due), so
            # its LIMIT reads the first rows instead of sorting every request in the state. It
            # leads with the state, so it also serves the counts of the open states (home page,
            # queue, board): a second index on the state alone would only cost every write.
            # (PostgreSQL's ascending order puts nulls last, as the queue's does; SQLite takes
            # no NULLS LAST in an index.)
            models.Index(
                fields=["state", "resolution_due_at", "response_due_at", "created_at", "id"],
                name="request_queue_order",
            ),
            # The SLA figures' period (the resolution clock's start): a period of a long history
            # reads its own rows, not the whole table.
            models.Index(fields=["resolution_started_at"], name="request_resolution_started"),
            # The fleet's open requests per instance (a subquery over the open states).
            models.Index(fields=["instance", "state"], name="request_instance_state"),
            # The fleet's versions named by requests: only the requests that name one.
            models.Index(
                fields=["target_version", "state"],
                name="request_target_version",
                condition=~Q(target_version=""),
            ),
            # The list's filters: `q`, and `instance` and `external_id` in any case (iexact
            # compares UPPER(column), which these expressions index).
            SearchVectorIndex(fields=["search_vector"], name="request_search_vector"),
            models.Index(Upper("instance_slug"), name="request_instance_slug_upper"),
            models.Index(
                Upper("external_id"),
                name="request_external_id_upper",
                condition=Q(external_id__isnull=False),
            ),
            # Equality on the slug (the instance's requests, the one open provisioning request).
            models.Index(fields=["instance_slug"], name="request_instance_slug"),
            # The grants a user made (deleting a user checks them): most requests have none.
            models.Index(
                fields=["granted_by"],
                name="request_granted_by",
                condition=Q(granted_by__isnull=False),
            ),
            # The sweep's lookups (sla/next_alert.py): each open timer that can still alert, by
            # when its next alert falls due.
            next_alert.index("response", "sweep_response", live={"ended_at__isnull": True}),
            next_alert.index(
                "resolution",
                "sweep_resolution",
                live={"ended_at__isnull": True},
                paused_at="resolution_paused_at",
            ),
            # The open requests by resolution due date: the dashboards' attention list, and the
            # at_risk=true filter's scan of the open requests.
            models.Index(
                fields=["resolution_due_at"],
                name="open_resolution_due",
                condition=Q(ended_at__isnull=True),
            ),
            # Grants by expiry: the Access page, GET /api/v1/access/ and the expiry reminders.
            models.Index(
                fields=["expires_at"],
                name="access_grant_expires",
                condition=Q(kind=Kind.ACCESS, state=State.DONE),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.target_label}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def whole_category(self) -> bool:
        """An access request for every instance of its category (no instance named)."""
        return self.kind == Kind.ACCESS and not self.instance_slug

    @property
    def target_label(self) -> str:
        """What the request is about, in words: the slug, or "all internal instances"."""
        if self.whole_category:
            return f"all {self.category} instances"
        return self.instance_slug


class SlaPolicy(models.Model):
    """The targets of one request kind (docs/sla.md), editable in the admin."""

    class Mode(models.TextChoices):
        CALENDAR = "calendar", "Calendar time"
        WORKING = "working", "Working days"
        TARGET_DATE = "target_date", "Until the target date DevOps sets"

    kind = models.CharField(max_length=20, choices=Kind.choices, unique=True)
    response_target = models.DurationField(
        null=True, blank=True, help_text="Empty: no response timer (e.g. upgrades)."
    )
    response_mode = models.CharField(max_length=20, choices=Mode.choices[:2], default=Mode.CALENDAR)
    resolution_target = models.DurationField(
        null=True,
        blank=True,
        help_text="For working days, N days = N x 24 h of working time. Empty with 'target date'.",
    )
    resolution_mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.WORKING)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"SLA policy for {self.kind}"


class Closure(models.Model):
    """A day the team does not work, beyond weekends and the holiday calendar."""

    date = models.DateField(unique=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.reason}".strip()


class Event(models.Model):
    """One entry of a request's history: an action, a comment or a provisioning step."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    action = models.CharField(max_length=40)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    comment = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["request", "at"], name="event_request_at")]

    def __str__(self) -> str:
        return f"{self.action} on #{self.request_id} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def verb(self) -> str:
        return self.action.replace("_", " ")


class Comment(models.Model):
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    body = models.TextField()
    created_at = models.DateTimeField()
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="comment_record")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment by {self.author_id} on #{self.request_id}"


class Approval(models.Model):
    """Who approved a request at which stage. The check constraint is the database's half of
    separation of duties: the approver is never the requester."""

    class Stage(models.TextChoices):
        LEADERSHIP = "leadership", "CE Leadership"
        TECH_REVIEW = "tech_review", "Tech Review"
        MANAGERS = "managers", "Managers"  # access requests

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="approvals")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approved = models.BooleanField()
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(approver=models.F("requester")), name="approver_is_not_requester"
            ),
            models.UniqueConstraint(fields=["request", "stage"], name="one_decision_per_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} decision on #{self.request_id}"


class Notification(models.Model):
    """One message about one event on one channel. The unique constraint and the conditional
    claim in the sender make sure it goes out once."""

    class Channel(models.TextChoices):
        SLACK = "slack", "Slack"
        EMAIL = "email", "Email"
        # The Slack app's approval messages (requests_app/slack): posted, then edited in place.
        SLACK_APP = "slack_app", "Slack approvals"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    # The request it is about; none for news about an instance (drift found by verification).
    request = models.ForeignKey(
        Request, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    instance = models.ForeignKey(
        Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    # The history event it tells of; SLA alerts (at risk, breached) belong to no event.
    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    topic = models.CharField(max_length=40)
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a sender claimed it (status sending): a claim older than a cutoff is a sender that
    # died, and the relay takes the row back (pending again, or failed after the last attempt).
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "channel", "topic"], name="one_notification_per_event_channel"
            ),
            models.UniqueConstraint(
                fields=["request", "channel", "topic"],
                condition=Q(event__isnull=True),
                name="one_sla_alert_per_request_channel",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.topic} for event {self.event_id}"


class SlackMessage(models.Model):
    """The Slack message that asks for one approval stage of one request. Made in the
    transaction that enters the stage; the outbox's job posts it and keeps its channel and `ts`
    here, so every later change edits that message instead of posting another."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="slack_messages")
    stage = models.CharField(max_length=20, choices=Approval.Stage.choices)
    channel = models.CharField(max_length=40, blank=True)
    ts = models.CharField(max_length=40, blank=True)  # empty until posted
    # Set while a job posts it: the claim that makes it posted once (requests_app/slack/outbox).
    posting_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    posted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "stage"], name="one_slack_message_per_stage")
        ]

    def __str__(self) -> str:
        return f"Slack message of #{self.request_id} ({self.stage})"


class SlackDelivery(models.Model):
    """An interaction payload Slack delivered and the portal took up, by a key made from the
    payload (who clicked what, when): the unique key recognises a delivery Slack repeats, which
    is then answered without acting again."""

    key = models.CharField(max_length=255, unique=True)
    received_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key
