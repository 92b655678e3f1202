from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from requests_app import api

router = DefaultRouter(trailing_slash=True)
router.register("requests", api.RequestViewSet, basename="api-request")
router.register("instances", api.InstanceViewSet, basename="api-instance")


def _api(patterns):
    # The API authenticates itself (session or token) and answers 401/403 in JSON; the
    # login-redirect middleware must not turn token calls into redirects to the login page.
    for pattern in patterns:
        pattern.callback.login_required = False
    return patterns


api_urlpatterns = _api(router.urls)
schema_urlpatterns = _api([path("", SpectacularAPIView.as_view(), name="api-schema")])
