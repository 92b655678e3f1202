from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
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
