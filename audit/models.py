"""The audit log of sign-ins: who signed in or out, or failed to, when, from where."""

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    SIGNED_IN = "signed_in", "Signed in"
    SIGNED_OUT = "signed_out", "Signed out"
    FAILED = "failed", "Failed"
    # Refused because the username or the address is locked out, or the failure that locked it.
    LOCKED_OUT = "locked_out", "Locked out"


class SignInEvent(models.Model):
    """One sign-in, sign-out or failed attempt. Rows are only ever added."""

    at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    # Who, when known; `username` keeps what was typed (a failure may name no user) and the
    # name after the user is gone.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=[o.value for o in Outcome]),
                name="sign_in_event_outcome_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()}: {self.username or '?'} at {self.at:%Y-%m-%d %H:%M}"
