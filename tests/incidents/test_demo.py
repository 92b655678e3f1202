"""seed_demo's incidents: an open sev2 and a sev3 resolved with its postmortem, made once."""

import pytest

from incidents import demo
from incidents.models import Incident
from portal.management.commands.seed_demo import Command
from tests.incidents.factories import make_instance

pytestmark = pytest.mark.clock  # the demo incidents are opened minutes and days before now


def test_the_demo_incidents_are_made_once(db, settings):
    Command().seed_users(settings.DEMO_PASSWORD)
    make_instance("acme")
    make_instance("globex")
    assert demo.seed() == "2 demo incidents (2 new)"
    assert demo.seed() == "2 demo incidents (0 new)"
    open_one = Incident.objects.get(title=demo.OPEN_SEV2)
    assert (open_one.severity, open_one.state) == ("sev2", "open")
    assert [i.slug for i in open_one.instances.all()] == ["globex"]
    assert list(open_one.events.values_list("action", flat=True)) == ["open", "update"]
    done = Incident.objects.get(title=demo.RESOLVED_SEV3)
    assert (done.severity, done.state, done.commander.username) == ("sev3", "resolved", "devops")
    assert done.postmortem_url.startswith("https://")
    assert list(done.events.values_list("action", flat=True)) == [
        "open",
        "ack",
        "update",
        "mitigate",
        "resolve",
    ]


def test_without_the_demo_instances_nothing_is_made(db, settings):
    Command().seed_users(settings.DEMO_PASSWORD)
    assert demo.seed() == "0 demo incidents (0 new)"
