from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receivers of Django's sign-in signals (after django-axes', which comes
        # first in INSTALLED_APPS and marks a locked-out request before they run).
        from audit import signals  # noqa: F401
