"""Dashboards (pages and CSV) and the SLA summary of the JSON API, included once at the root."""

from django.urls import path

from dashboards import views
from requests_app.api_urls import _api

urlpatterns = [
    path("dashboards/sla/", views.sla_dashboard, name="sla_dashboard"),
    path("dashboards/sla/export.csv", views.sla_export, name="sla_export"),
    path("dashboards/board/", views.board, name="board"),
    path("dashboards/fleet/", views.fleet_page, name="fleet"),
    *_api([path("api/v1/sla/summary/", views.SlaSummaryView.as_view(), name="api-sla-summary")]),
]
