import logging

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import DisallowedHost
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    HttpResponseServerError,
    JsonResponse,
)
from django.shortcuts import render
from django.template import loader
from django.templatetags.static import static
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import health

logger = logging.getLogger(__name__)


@never_cache
@require_GET
@login_not_required  # load balancers and container health checks call it without a session
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": health.check_database(),
        "redis": health.check_redis(),
    }
    down = [name for name, state in checks.items() if state.startswith("down")]
    body: dict[str, str | list[str]] = {"status": "ok" if not down else "unavailable", **checks}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)


@require_GET
@login_not_required  # browsers ask for it before anyone signs in, on the sign-in page too
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for where no page names its icon (a JSON or an admin
    page): the SVG that base.html links, so the request ends in the icon, not in a 404."""
    return HttpResponseRedirect(static("portal/favicon.svg"))


# -- error pages ---------------------------------------------------------------------------------
# Set as handler403/404/500 (portal/urls.py) and CSRF_FAILURE_VIEW: people get the portal's
# layout, what went wrong in words, and a way back. The JSON API keeps Django's plain answers
# (DRF answers its own errors in the ErrorSerializer body before these are reached).

API_PREFIX = "/api/"


def _back(request: HttpRequest) -> str:
    """The page the person came from, if it is one of ours (a link back; no script under the
    Content-Security-Policy)."""
    referer = request.META.get("HTTP_REFERER", "")
    try:
        ours = url_has_allowed_host_and_scheme(
            referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    except DisallowedHost:
        return ""
    return referer if ours and referer != request.build_absolute_uri() else ""


def _error_page(
    request: HttpRequest, status: int, title: str, message: str, hint: str = ""
) -> HttpResponse:
    context = {
        "status": status,
        "title": title,
        "message": message,
        "hint": hint,
        "back": _back(request),
    }
    return render(request, "portal/error.html", context, status=status)


def _message_of(exception: Exception | None) -> str:
    """The message the code raised with (PermissionDenied("Only CE and Sales file requests.")),
    not the resolver's own details (a dict) nor a class name."""
    message = exception.args[0] if exception is not None and exception.args else ""
    return message if isinstance(message, str) else ""


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return defaults.permission_denied(request, exception)
    return _error_page(
        request,
        403,
        "Not allowed",
        _message_of(exception) or "Your account may not open this page.",
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return defaults.page_not_found(request, exception)
    return _error_page(
        request,
        404,
        "Not found",
        _message_of(exception) or f"There is no page at {request.path}.",
        "The address may be mistyped, or what it named may be gone.",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error_page(
        request,
        403,
        "The form has expired",
        "The portal could not tell that this form came from your own session: it was probably "
        "opened before you signed in again, or in another browser.",
        "Go back, reload the page and send the form again.",
    )


# The server error page must render whatever failed: not the database, the session or the
# context processors (the navigation reads roles from the database). So the template is
# rendered without the request, and if even that fails, this text is the page.
SERVER_ERROR_TEXT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Server error · Managed Instance Portal</title>
</head><body><h1>Something went wrong</h1>
<p>The portal could not answer this request. It has been logged; try again in a minute.</p>
<p><a href="/">Home</a></p></body></html>"""


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return defaults.server_error(request)
    try:
        html = loader.get_template("portal/500.html").render({"back": _back(request)})
    except Exception:  # noqa: BLE001 - the page about a failure must not fail in turn
        logger.exception("The server error page failed to render")
        html = SERVER_ERROR_TEXT
    return HttpResponseServerError(html)
