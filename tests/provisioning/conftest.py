import pytest

from provisioning.compute import Compute, clients
from provisioning.sandbox.server import start_in_thread

PROJECT = "mi-acme"
ZONE = "us-central1-f"


@pytest.fixture
def sandbox():
    """A sandbox Compute server on a free port; yields (url, server)."""
    url, server = start_in_thread(port=0)
    yield url, server
    server.stop()


@pytest.fixture
def api(sandbox):
    """The raw google-cloud-compute clients pointed at the sandbox."""
    return clients(sandbox[0])


@pytest.fixture
def compute(sandbox):
    return Compute(sandbox[0], timeout=30, backoff=0.05)
