"""status.sla_and_working, what the tables draw their bars from, says what sla_json and
policies.is_working say, for requests of every kind and state."""

import pytest
from django.utils import timezone

from requests_app.models import Request
from requests_app.sla import policies, status
from tests.dashboards.factories import random_rows

pytestmark = pytest.mark.clock


def test_it_is_sla_json_and_is_working(users):
    now = timezone.now()
    random_rows(users["ce"], [users["devops"]], now, 80, seed=3)
    calendar, found = policies.load()
    zone = timezone.get_current_timezone()
    for request in Request.objects.all():
        sla, working = status.sla_and_working(request, now, calendar, found, zone)
        assert sla == status.sla_json(request, now)
        assert working == {which: policies.is_working(request, which) for which in policies.TIMERS}
