"""The incident pages: opening through the form, the buttons each role sees, POST then redirect
with a message, the update form, and open incidents on the instance and fleet pages."""

import re

import pytest

from incidents.models import Incident, IncidentEvent
from requests_app.models import Notification
from tests.incidents.factories import incident_in_state, make_instance, open_incident

pytestmark = pytest.mark.clock


@pytest.fixture
def acme(db):
    return make_instance("acme", customer="Acme Corp")


def buttons(response):
    return set(re.findall(r'data-action="([a-z_]+)"', response.content.decode()))


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_devops_open_an_incident_through_the_form(client, users, acme):
    make_instance("globex")
    client.force_login(users["devops"])
    page = client.get("/incidents/new/?instance=acme")
    assert page.status_code == 200
    assert re.search(r'<option value="acme"[^>]*selected', page.content.decode())
    response = client.post(
        "/incidents/new/",
        {"title": "Logins fail", "severity": "sev1", "instances": ["acme", "globex"]},
        follow=True,
    )
    incident = Incident.objects.get()
    assert response.redirect_chain == [(f"/incidents/{incident.pk}/", 302)]
    assert messages_of(response) == [
        f"Incident #{incident.pk} opened: DevOps are notified, the clocks run."
    ]
    assert incident.severity == "sev1" and incident.opened_by == users["devops"]
    assert sorted(i.slug for i in incident.instances.all()) == ["acme", "globex"]
    assert Notification.objects.filter(topic="incident_opened").exists()
    assert buttons(response) == {"ack", "commander"}
    assert 'data-testid="update-form"' in response.content.decode()


def test_the_form_shows_what_is_wrong_and_opens_nothing(client, users, acme):
    client.force_login(users["ce"])
    response = client.post("/incidents/new/", {"title": "", "severity": "sev9"})
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"title", "severity", "instances"}
    response = client.post(
        "/incidents/new/", {"title": "x", "severity": "sev2", "instances": ["nosuch"]}
    )
    assert response.context["form"].errors["instances"] == ["There is no live instance 'nosuch'."]
    assert not Incident.objects.exists()


@pytest.mark.parametrize("who", ["sales", "lead", "reviewer", "manager"])
def test_other_roles_read_but_do_not_open(client, users, acme, who):
    incident = open_incident(users["ce"], acme)
    client.force_login(users[who])
    assert client.get("/incidents/new/").status_code == 403
    assert client.get("/incidents/").status_code == 200
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200 and buttons(page) == set()
    assert 'data-testid="update-form"' not in page.content.decode()
    assert client.post(f"/incidents/{incident.pk}/actions/ack/").status_code == 403
    assert client.post(f"/incidents/{incident.pk}/updates/", {"body": "hi"}).status_code == 403
    assert IncidentEvent.objects.filter(incident=incident).count() == 1


def test_devops_acknowledge_mitigate_and_resolve_from_the_page(client, users, acme):
    incident = open_incident(users["ce"], acme, severity="sev2")
    client.force_login(users["devops"])
    url = f"/incidents/{incident.pk}"
    page = client.post(f"{url}/actions/ack/", {"comment": "On it."}, follow=True)
    assert messages_of(page) == ["Acknowledged: the acknowledge clock stopped."]
    assert buttons(page) == {"mitigate", "resolve", "commander"}
    assert "On it." in page.content.decode()
    page = client.post(f"{url}/actions/mitigate/", follow=True)
    assert buttons(page) == {"resolve", "commander"}
    # A sev2 is resolved with its postmortem: without one the page says so and keeps the text.
    page = client.post(f"{url}/actions/resolve/", {"comment": "Rolled back."}, follow=True)
    assert "postmortem" in messages_of(page)[0]
    assert "Rolled back.</textarea>" in page.content.decode()
    page = client.post(
        f"{url}/actions/resolve/",
        {"comment": "Rolled back.", "postmortem_url": "https://wiki.example.com/pm/7"},
        follow=True,
    )
    assert messages_of(page) == ["Resolved: the resolution clock stopped."]
    assert buttons(page) == set()
    assert 'href="https://wiki.example.com/pm/7"' in page.content.decode()
    # Acting again on a resolved incident (a stale page): said, not an error page.
    page = client.post(f"{url}/actions/ack/", follow=True)
    assert "is resolved" in messages_of(page)[0]


def test_the_commander_is_set_from_the_page(client, users, acme):
    incident = open_incident(users["ce"], acme)
    client.force_login(users["devops"])
    page = client.post(
        f"/incidents/{incident.pk}/actions/commander/", {"commander": "devops2"}, follow=True
    )
    assert messages_of(page) == ["Commander: devops2."]
    assert 'data-testid="incident-commander">devops2<' in page.content.decode()


def test_ce_posts_updates_and_blank_ones_are_refused(client, users, acme):
    incident = incident_in_state(users, "resolved", acme)
    client.force_login(users["ce"])
    page = client.post(f"/incidents/{incident.pk}/updates/", {"body": " "}, follow=True)
    assert page.status_code == 200 and "This field is required." in messages_of(page)[0]
    page = client.post(
        f"/incidents/{incident.pk}/updates/",
        {"body": "Customer confirms it is fixed."},
        follow=True,
    )
    assert messages_of(page) == ["Update posted."]
    assert "Customer confirms it is fixed." in page.content.decode()


def test_the_list_filters_like_the_api(client, users, acme):
    globex = make_instance("globex")
    a = incident_in_state(users, "open", acme, severity="sev1")
    b = incident_in_state(users, "resolved", globex, severity="sev3")
    client.force_login(users["manager"])

    def ids(query=""):
        page = client.get(f"/incidents/{query}")
        return page.status_code, [
            int(i) for i in re.findall(r'data-incident-id="(\d+)"', page.content.decode())
        ]

    assert ids() == (200, [b.pk, a.pk])
    assert ids("?state=open") == (200, [a.pk])
    assert ids("?severity=sev3&instance=GLOBEX") == (200, [b.pk])
    assert ids("?state=&severity=") == (200, [b.pk, a.pk])  # an empty field is no filter
    assert ids("?state=closed") == (400, [])


def test_the_list_page_runs_a_fixed_number_of_queries(
    client, users, acme, django_assert_max_num_queries
):
    for _ in range(3):
        incident_in_state(users, "acknowledged", acme)
    client.force_login(users["manager"])
    client.get("/incidents/")
    with django_assert_max_num_queries(12) as counted:
        client.get("/incidents/")
    for _ in range(4):
        incident_in_state(users, "open", acme, severity="sev1")
    with django_assert_max_num_queries(len(counted)):
        client.get("/incidents/")


def test_the_instance_page_shows_its_open_incidents(client, users, acme):
    live = open_incident(users["ce"], acme, severity="sev1", title="Logins fail")
    done = incident_in_state(users, "resolved", acme, severity="sev3")
    client.force_login(users["manager"])
    page = client.get("/instances/acme/").content.decode()
    section = page[page.index('data-testid="open-incidents"') :]
    section = section[: section.index("</section>")]
    assert f'href="/incidents/{live.pk}/"' in section and "SEV1 #" in section
    assert "Logins fail" in section
    assert f"/incidents/{done.pk}/" not in section
    assert "Open an incident" not in section  # managers read
    client.force_login(users["ce"])
    page = client.get("/instances/acme/").content.decode()
    assert 'href="/incidents/new/?instance=acme"' in page


def test_the_fleet_page_shows_open_incidents(client, users, acme, django_assert_max_num_queries):
    globex = make_instance("globex")
    sev2 = open_incident(users["ce"], acme, globex, severity="sev2")
    sev1 = open_incident(users["ce"], acme, severity="sev1")
    incident_in_state(users, "resolved", globex)
    client.force_login(users["manager"])
    page = client.get("/dashboards/fleet/").content.decode()
    row = page[page.index('data-slug="acme"') :]
    row = row[: row.index("</tr>")]
    # Most severe first, each a link to the incident.
    assert row.index(f'data-incident="{sev1.pk}"') < row.index(f'data-incident="{sev2.pk}"')
    globex_row = page[page.index('data-slug="globex"') :]
    globex_row = globex_row[: globex_row.index("</tr>")]
    assert re.findall(r'data-incident="(\d+)"', globex_row) == [str(sev2.pk)]
    assert re.search(r'data-testid="incident-count">2<', page)
    with django_assert_max_num_queries(20) as counted:
        client.get("/dashboards/fleet/")
    open_incident(users["ce"], acme, globex, severity="sev3")
    with django_assert_max_num_queries(len(counted)):
        client.get("/dashboards/fleet/")
