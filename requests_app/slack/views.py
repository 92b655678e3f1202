"""`POST /slack/interactions/`: the Request URL of the Slack app's interactivity. Slack signs
what it sends instead of signing in, so the view needs no session and no CSRF token; it answers
401 to what Slack did not sign (or signed more than 5 minutes ago) and 200 to everything else:
a refusal is shown in Slack, not as an HTTP error."""

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from requests_app.slack import interactions

log = logging.getLogger(__name__)


@csrf_exempt
@login_not_required
@require_POST
def interactions_endpoint(request: HttpRequest) -> HttpResponse:
    if not settings.SLACK_APPROVALS:
        raise Http404("Slack approvals are off.")
    now = timezone.now()
    body = request.body  # the raw bytes are what Slack signed: read before the form is parsed
    try:
        interactions.verify(
            body,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            now,
        )
    except interactions.Unverified as exc:
        log.warning("refused a Slack interaction: %s", exc)
        return JsonResponse({"detail": f"Not signed by Slack: {exc}."}, status=401)
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError:
        log.warning("a signed Slack interaction carried no JSON payload")
        return HttpResponse(status=200)
    answer = interactions.handle(payload, now)
    if answer is None:
        return HttpResponse(status=200)
    return JsonResponse(answer)
