"""A rollout wave on the sandbox through a real worker: real Terraform plans side by side, one
confirm, at most ROLLOUT_MAX_PARALLEL applying, and the first errored run halts the rest."""

import time

import pytest
import requests
from django.utils import timezone

from provisioning import fleet, runs
from releases import opening, waves
from releases.models import Wave
from requests_app.models import Kind, Request
from tests.provisioning.test_engine import people, sandbox, worker_factory  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,
    pytest.mark.clock_real(
        "an RQ worker subprocess keeps real time: it plans and applies the wave's runs"
    ),
]


def wait_for(check, what, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_wave_of_three_halts_at_the_first_errored_run(
    people,  # noqa: F811
    sandbox,  # noqa: F811
    worker_factory,  # noqa: F811
    settings,
    monkeypatch,
):
    settings.ROLLOUT_MAX_PARALLEL = 1
    monkeypatch.setenv("ROLLOUT_MAX_PARALLEL", "1")  # the worker's own settings
    slugs = ["wave-a", "wave-b", "wave-c"]
    for slug in slugs:
        fleet.build(slug, f"{slug} Inc", machine_type="n1-standard-8", version="6.1.0")
    worker_factory()

    release, _ = opening.record("6.2.0", timezone.now(), user=people["devops"])
    upgrades = Request.objects.filter(kind=Kind.UPGRADE, target_version="6.2.0")
    assert sorted(upgrades.values_list("instance_slug", flat=True)) == slugs
    assert waves.suggest(release) == [["wave-a"], ["wave-b", "wave-c"]]

    wave = waves.create(release, slugs, people["devops"])
    assert all(r.assignee == people["devops"] for r in upgrades.all())  # picked up by the caller
    views = wait_for(
        lambda: (v := waves.view(wave)) and all(x.state == "planned" for x in v) and v,
        "three plans",
    )
    assert {v.differs for v in views} == {False}  # one release, one shape of change

    # The first instance's apply will fail at Compute, on every retry.
    requests.post(
        f"{sandbox}/_sandbox/faults",
        json={
            "method": "POST",
            "path_regex": r"projects/mi-wave-a/",
            "status": 403,
            "reason": "forbidden",
            "message": "Injected: the project's service account lost its role",
            "times": None,
        },
        timeout=10,
    ).raise_for_status()
    waves.confirm(wave, people["devops"])

    halted = wait_for(
        lambda: Wave.objects.filter(pk=wave.pk, halted_at__isnull=False).first(), "the halt"
    )
    assert "wave-a" in halted.halt_reason and "errored" in halted.halt_reason
    states = {
        r.instance_slug: runs.latest_run(r.pk).state for r in upgrades.order_by("instance_slug")
    }
    assert states == {"wave-a": "errored", "wave-b": "planned", "wave-c": "planned"}
    # A halted wave is not confirmed again; the others stay planned for a new wave.
    with pytest.raises(waves.WaveRefused) as refused:
        waves.confirm(halted, people["devops"])
    assert refused.value.status == 409
