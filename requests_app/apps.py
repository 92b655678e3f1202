from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from provisioning.models import Instance, Run


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Requests"

    def ready(self) -> None:
        # Provisioning tells of its runs through signals; the workflow turns them into history
        # events and finishes the request when its run applies.
        from provisioning import signals
        from requests_app import notifications, workflow

        def on_run_event(
            sender: object,
            run: "Run",
            action: str,
            comment: str,
            at: datetime,
            user: "User | None",
            **kwargs: Any,
        ) -> None:
            workflow.record_run_event(run, action, comment, at, user)

        def on_run_applied(sender: object, run: "Run", at: datetime, **kwargs: Any) -> None:
            workflow.finish_by_run(run, at)

        def on_instance_drift(
            sender: object, instance: "Instance", drift: dict[str, Any], at: datetime, **kw: Any
        ) -> None:
            notifications.on_drift(instance, drift, at)

        # weak=False: these functions live only in this method, and a weak reference to them
        # dies with it (DEBUG's signature check used to keep them alive by accident).
        signals.run_event.connect(on_run_event, weak=False, dispatch_uid="requests_app.run_event")
        signals.run_applied.connect(
            on_run_applied, weak=False, dispatch_uid="requests_app.run_applied"
        )
        signals.instance_drift.connect(
            on_instance_drift, weak=False, dispatch_uid="requests_app.drift"
        )
