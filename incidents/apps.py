from typing import Any

from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        # A closure added in the admin moves every working-day timer: the request timers'
        # recompute tells of it, and the incidents' running timers move too.
        from incidents import timers
        from requests_app import signals

        def on_calendar_changed(sender: object, **kwargs: Any) -> None:
            timers.recompute_unresolved()

        signals.sla_calendar_changed.connect(
            on_calendar_changed, weak=False, dispatch_uid="incidents.calendar_changed"
        )
