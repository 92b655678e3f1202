"""An instance keeps GCP's naming rules wherever it comes from: validators on the model and
check constraints in the database, so neither the importer nor the admin nor code that forgets
the forms can store one the forms would refuse."""

import pytest
from django.db import IntegrityError, transaction

from provisioning import instances
from provisioning.models import Instance


def row(**fields):
    base = {
        "slug": "acme",
        "customer": "Acme",
        "status": "active",
        "gcp_project": "mi-acme",
        "zone": "us-central1-f",
        "machine_type": "n1-standard-8",
        "version": "6.0.0",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    "bad",
    [
        {"slug": "Acme"},
        {"slug": "acme-"},
        {"slug": "ac me"},
        {"gcp_project": "mi"},
        {"gcp_project": "1mi-acme"},
        {"version": "v6.0.0"},
        {"version": "latest"},
        {"zone": "mars-north1-z1"},
        {"machine_type": "n1-standard-4"},
        {"status": "deleted"},
    ],
)
def test_the_database_refuses_an_instance_the_forms_would_refuse(db, bad):
    with pytest.raises(IntegrityError), transaction.atomic():
        Instance.objects.create(**row(**bad))


def test_a_valid_instance_is_stored_with_or_without_a_version(db):
    Instance.objects.create(**row())
    Instance.objects.create(**row(slug="beta", gcp_project="mi-beta", version=""))
    assert Instance.objects.count() == 2


def test_the_one_place_that_makes_instances_names_what_is_wrong(db):
    with pytest.raises(instances.InstanceInvalid, match="zone"):
        instances.create("acme", "Acme", "active", zone="mars-north1")
    with pytest.raises(instances.InstanceInvalid, match="slug"):
        instances.create("Bad_Slug", "Acme", "active")
    assert not Instance.objects.exists()
