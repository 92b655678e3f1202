from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    """The SLA dashboard, the DevOps board and the fleet: pages over the request and instance
    data, with no models of their own."""

    name = "dashboards"
    verbose_name = "Dashboards"
