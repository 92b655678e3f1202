from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import health


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
