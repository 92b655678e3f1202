from typing import TypeVar

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from requests_app import api

router = DefaultRouter(trailing_slash=True)
router.register("requests", api.RequestViewSet, basename="api-request")
router.register("instances", api.InstanceViewSet, basename="api-instance")
router.register("access", api.AccessGrantViewSet, basename="api-access")

P = TypeVar("P", bound=URLPattern | URLResolver)


def _api(patterns: list[P]) -> list[P]:
    # The API authenticates itself (session or token) and answers 401/403 in JSON; the
    # login-redirect middleware must not turn token calls into redirects to the login page.
    for pattern in patterns:
        if isinstance(pattern, URLPattern):  # the router makes patterns only
            login_not_required(pattern.callback)
    return patterns


api_urlpatterns = _api(
    [
        *router.urls,
        # Last: any other path that ends like an API path (a request id that is not a number,
        # an unknown route) is a 404 in the API's error body, not the HTML page. Paths without
        # the trailing slash still get Django's redirect to the one with it.
        re_path(r"^.*/$", api.not_found, name="api-not-found"),
    ]
)
schema_urlpatterns = _api([path("", SpectacularAPIView.as_view(), name="api-schema")])
