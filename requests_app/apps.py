from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Requests"

    def ready(self):
        # Provisioning tells of its runs through signals; the workflow turns them into history
        # events and finishes the request when its run applies.
        from provisioning import signals
        from requests_app import workflow

        def on_run_event(sender, run, action, comment, at, user, **kwargs):
            workflow.record_run_event(run, action, comment, at, user)

        def on_run_applied(sender, run, at, **kwargs):
            workflow.finish_by_run(run, at)

        signals.run_event.connect(on_run_event, dispatch_uid="requests_app.run_event")
        signals.run_applied.connect(on_run_applied, dispatch_uid="requests_app.run_applied")
