from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from accounts import views as account_views
from incidents.urls import api_urlpatterns as incident_api_urlpatterns
from portal import roles, views
from releases.urls import api_urlpatterns as release_api_urlpatterns
from requests_app import views as request_views
from requests_app.api_urls import api_urlpatterns, schema_urlpatterns
from requests_app.slack.views import interactions_endpoint


def devops_or_superuser(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The job dashboard is for DevOps and superusers; django-rq itself checks is_staff only."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_superuser or roles.DEVOPS in roles.roles_of(user)):
            raise PermissionDenied("The job dashboard is for DevOps.")
        # django-rq's views insist on is_staff; the role decides here instead (not saved).
        user.is_staff = True
        return view(request, *args, **kwargs)

    return wrapped


# Error pages in the portal's layout (portal/views.py); CSRF_FAILURE_VIEW is in the settings.
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error

urlpatterns = [
    path("", request_views.home, name="home"),
    path("", include("requests_app.urls")),
    path("", include("dashboards.urls")),
    path("", include("releases.urls")),
    path("", include("incidents.urls")),
    # Before the requests' API: its last pattern answers every other API path with a 404.
    path("api/v1/", include(release_api_urlpatterns)),
    path("api/v1/", include(incident_api_urlpatterns)),
    path("api/v1/", include(api_urlpatterns)),
    path("api/schema/", include(schema_urlpatterns)),
    path("", include("audit.urls")),
    path("healthz", views.healthz, name="healthz"),
    # Slack's interactivity Request URL (docs/slack.md): signed by Slack, no sign-in.
    path("slack/interactions/", interactions_endpoint, name="slack_interactions"),
    path("favicon.ico", views.favicon, name="favicon"),
    # Sign-in (password and SSO), the API tokens page.
    path("", include("accounts.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Before the admin's own: the password switches apply to the admin's sign-in too.
    path("admin/login/", account_views.admin_login, name="admin_login"),
    path("admin/", admin.site.urls),
    path(
        "jobs/",
        include(
            (
                get_admin_urlpatterns(view_wrapper=devops_or_superuser)
                + [
                    # stats.json: the same dashboard data, for the same people.
                    type(p)(p.pattern, devops_or_superuser(p.callback), name=p.name)
                    for p in get_api_urlpatterns()
                ],
                "django_rq",
            )
        ),
    ),
]
