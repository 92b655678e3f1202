"""Incidents: something is wrong with one or more instances now. Opened by CE or DevOps,
acknowledged, mitigated and resolved by DevOps, each step and each update an event of the
incident's timeline; two SLA timers per incident (docs/incidents.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from provisioning.models import Instance
from requests_app.sla import next_alert


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 (critical)"
    SEV2 = "sev2", "SEV2 (major)"
    SEV3 = "sev3", "SEV3 (minor)"


class IncidentState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"


UNRESOLVED_STATES = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED)
# Severities whose resolution needs a postmortem.
POSTMORTEM_SEVERITIES = (Severity.SEV1, Severity.SEV2)
# The two timers of an incident: both start when it is opened.
ACKNOWLEDGE, RESOLUTION = "acknowledge", "resolution"
TIMERS = (ACKNOWLEDGE, RESOLUTION)


class IncidentQuerySet(models.QuerySet["Incident"]):
    def unresolved(self) -> "IncidentQuerySet":
        return self.filter(state__in=UNRESOLVED_STATES)

    def with_related(self) -> "IncidentQuerySet":
        """What the pages and the API show of each incident, in a fixed number of queries."""
        events = IncidentEvent.objects.select_related("by").order_by("at", "id")
        return self.select_related("opened_by", "commander").prefetch_related(
            "instances", models.Prefetch("events", queryset=events)
        )


def _sweep_indexes() -> list[models.Index]:
    """The sweep's lookups (requests_app/sla/next_alert.py): each running timer that can still
    alert, by when its next alert falls due; and each running timer's due instant, for "what is
    due next"."""
    indexes = []
    for which in TIMERS:
        indexes.append(next_alert.index(which, f"incident_sweep_{which[:3]}", live={}))
        indexes.append(
            models.Index(
                fields=[f"{which}_due_at"],
                name=f"incident_open_{which[:3]}_due",
                condition=Q(**{f"{which}_stopped_at__isnull": True}),
            )
        )
    return indexes


class Incident(models.Model):
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=4, choices=Severity.choices)
    state = models.CharField(
        max_length=20, choices=IncidentState.choices, default=IncidentState.OPEN, db_index=True
    )
    description = models.TextField(blank=True)
    instances = models.ManyToManyField(Instance, related_name="incidents")
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incidents_opened"
    )
    # Who leads the response: a DevOps member (the first to acknowledge, unless one was set).
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents_commanded",
    )
    postmortem_url = models.URLField(max_length=500, blank=True)
    # Bumped by every action: an action's compare-and-set is on (state, version), so of two
    # actions judged against the same incident one wins, even when neither moves the state.
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField()  # opened: both timers start here
    updated_at = models.DateTimeField(auto_now=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)

    # The timers (incidents/timers.py keeps them, with requests_app/sla's engine): when each
    # stopped (acknowledged, resolved), the stored due, 75% and breach instants that the sweep,
    # the pages and the dashboard read, and the claims of the sweep's two alerts.
    acknowledge_stopped_at = models.DateTimeField(null=True, blank=True)
    acknowledge_due_at = models.DateTimeField(null=True, blank=True)
    acknowledge_warn_at = models.DateTimeField(null=True, blank=True)
    acknowledge_breach_at = models.DateTimeField(null=True, blank=True)
    acknowledge_warned_at = models.DateTimeField(null=True, blank=True)
    acknowledge_breach_alerted_at = models.DateTimeField(null=True, blank=True)
    resolution_stopped_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    resolution_warn_at = models.DateTimeField(null=True, blank=True)
    resolution_breach_at = models.DateTimeField(null=True, blank=True)
    resolution_warned_at = models.DateTimeField(null=True, blank=True)
    resolution_breach_alerted_at = models.DateTimeField(null=True, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=Severity.values), name="incident_severity_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=IncidentState.values), name="incident_state_valid"
            ),
            # The postmortem rule, in the database too: no resolved sev1/sev2 without one.
            models.CheckConstraint(
                condition=~Q(
                    state=IncidentState.RESOLVED,
                    severity__in=[s.value for s in POSTMORTEM_SEVERITIES],
                    postmortem_url="",
                ),
                name="incident_resolved_major_has_postmortem",
            ),
        ]
        indexes = [
            models.Index(fields=["severity", "state"], name="incident_severity_state"),
            models.Index(fields=["created_at"], name="incident_created_at"),
            *_sweep_indexes(),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.severity} {self.title}"

    @property
    def is_resolved(self) -> bool:
        return self.state == IncidentState.RESOLVED

    @property
    def needs_postmortem(self) -> bool:
        return self.severity in POSTMORTEM_SEVERITIES


class IncidentEvent(models.Model):
    """One entry of an incident's timeline: an action (open, ack, mitigate, resolve, commander)
    or an update, with who, when, the state before and after, and its text."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=20)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"], name="incident_event_at")]

    def __str__(self) -> str:
        return f"{self.action} on incident #{self.incident_id} at {self.at:%Y-%m-%d %H:%M}"


class IncidentPolicy(models.Model):
    """The acknowledgement and resolution targets of one severity, editable in the admin."""

    class Mode(models.TextChoices):
        CALENDAR = "calendar", "Calendar time"
        WORKING = "working", "Working days"

    severity = models.CharField(max_length=4, choices=Severity.choices, unique=True)
    acknowledge_target = models.DurationField()
    acknowledge_mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.CALENDAR)
    resolution_target = models.DurationField(
        help_text="For working days, N days = N x 24 h of working time."
    )
    resolution_mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.CALENDAR)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "incident SLA policy"
        verbose_name_plural = "incident SLA policies"
        ordering = ["severity"]

    def __str__(self) -> str:
        return f"Incident SLA policy for {self.severity}"
