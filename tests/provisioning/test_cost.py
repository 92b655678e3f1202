"""One monthly cost for every page: the instance page (Instance.monthly_cost_usd) and the fleet
page (dashboards.fleet) read the same function."""

import pytest

from dashboards import fleet
from provisioning.models import Instance, monthly_cost


@pytest.mark.parametrize(
    "status, machine_type, expected",
    [
        ("active", "n1-standard-8", 194 + 282 + 56),
        ("provisioning", "n1-standard-16", 388 + 282 + 56),
        ("failed", "n1-standard-8", 194 + 282 + 56),  # may still hold its VM and disk
        ("suspended", "n1-standard-96", 13),  # only the snapshot's storage
        ("torn_down", "n1-standard-8", 0),
    ],
)
def test_the_instance_page_and_the_fleet_count_the_same_cost(status, machine_type, expected):
    instance = Instance(slug="acme", status=status, machine_type=machine_type)
    assert instance.monthly_cost_usd == monthly_cost(instance) == expected
    assert fleet.monthly_cost is monthly_cost
