from django.urls import path
from rest_framework.routers import DefaultRouter

from incidents import api, views
from requests_app.api_urls import _api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("incidents", api.IncidentViewSet, basename="api-incident")

api_urlpatterns = _api(list(router.urls))

urlpatterns = [
    path("incidents/", views.incident_list, name="incident_list"),
    path("incidents/new/", views.new_incident, name="new_incident"),
    path("incidents/<int:pk>/", views.incident_detail, name="incident_detail"),
    path(
        "incidents/<int:pk>/actions/<str:action>/",
        views.incident_action,
        name="incident_action",
    ),
    path("incidents/<int:pk>/updates/", views.incident_update, name="incident_update"),
]
