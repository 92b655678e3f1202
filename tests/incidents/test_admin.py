"""Incident SLA policies in the admin: a number and a unit per target (minutes too), saved to
the row the timers read; incidents themselves are read-only there (their pages and API keep
the timeline)."""

from datetime import timedelta

import pytest

from incidents.models import IncidentPolicy
from tests.incidents.factories import make_instance, open_incident

pytestmark = pytest.mark.clock  # signing in reads the clock


def policy(severity):
    # (get_or_create: a transactional test run before may have flushed the migration's rows)
    return IncidentPolicy.objects.get_or_create(
        severity=severity,
        defaults={
            "acknowledge_target": timedelta(minutes=15),
            "resolution_target": timedelta(hours=4),
        },
    )[0]


def test_the_policies_show_and_save_in_minutes_hours_and_working_days(client, users):
    sev1 = policy("sev1")
    client.force_login(users["admin"])
    listing = client.get("/admin/incidents/incidentpolicy/").content.decode()
    assert "15 minutes" in listing and "4 hours" in listing
    page = client.get(f"/admin/incidents/incidentpolicy/{sev1.pk}/change/")
    assert page.status_code == 200
    response = client.post(
        f"/admin/incidents/incidentpolicy/{sev1.pk}/change/",
        {
            "severity": "sev1",
            "acknowledge_target_number": "20",
            "acknowledge_target_unit": "minutes",
            "resolution_target_number": "1",
            "resolution_target_unit": "working_days",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Running incident timers are being recomputed." in response.content.decode()
    sev1.refresh_from_db()
    assert (sev1.acknowledge_target, sev1.acknowledge_mode) == (timedelta(minutes=20), "calendar")
    assert (sev1.resolution_target, sev1.resolution_mode) == (timedelta(days=1), "working")
    response = client.post(
        f"/admin/incidents/incidentpolicy/{sev1.pk}/change/",
        {
            "severity": "sev1",
            "acknowledge_target_number": "0",
            "acknowledge_target_unit": "minutes",
            "resolution_target_number": "",
            "resolution_target_unit": "hours",
        },
    )
    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors.keys() == {
        "acknowledge_target_number",
        "resolution_target_number",
    }


def test_incidents_are_read_only_in_the_admin(client, users):
    incident = open_incident(users["ce"], make_instance("acme"))
    client.force_login(users["admin"])
    page = client.get(f"/admin/incidents/incident/{incident.pk}/change/")
    assert page.status_code == 200 and "Save" not in page.content.decode()
    assert client.get("/admin/incidents/incident/add/").status_code == 403
