import django_rq
import hypothesis
import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from tests.factories import make_user

# Hypothesis's per-example deadline measures the machine, not the code: on a loaded machine (CI
# beside other work) an example that takes 300 ms once and 0.2 ms when replayed fails as "flaky".
# Speed is measured by bench/, never by a test; every property test keeps its example count.
hypothesis.settings.register_profile("portal", deadline=None)
hypothesis.settings.load_profile("portal")

# The clock marks, their audit and the date rerun (--clock-dates); pytester tests the plugin.
pytest_plugins = ["tests.clock", "pytester"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: runs real processes for a minute or more (deselect: -m 'not slow')"
    )
    # The suite runs the production settings (DEBUG off; `portal.devservices test-env` gives the
    # key and hosts). Production serves static files from collectstatic's hashed manifest, which
    # the tests do not build: plain names from the app folders here, served by WhiteNoise too.
    from django.test.utils import override_settings

    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        STATIC_ROOT=None,
        WHITENOISE_USE_FINDERS=True,
        # Look files up when asked instead of scanning all 3,000 static files each time a test
        # client loads the middleware (that scan was most of the time of an API call in a test).
        WHITENOISE_AUTOREFRESH=True,
    ).enable()


def pytest_sessionfinish(session, exitstatus):
    import os

    from portal import devservices

    if os.environ.get("REDIS_URL"):
        devservices.release_redis_db(os.environ["REDIS_URL"])


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: the SLA figures are kept under the version of the
    request data, which a rolled-back test leaves where the next one starts."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The real hasher is slow on purpose; tests create and sign in many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean_queues(settings):
    """Each test starts with empty RQ queues in the test Redis."""
    if settings.RQ_INPROCESS:
        yield
        return
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        queue.empty()
        # Jobs named after database rows (notification-<id>) outlive a test run in Redis, and
        # ids restart with each test database: forget the old ones.
        for key in queue.connection.scan_iter("rq:job:notification-*"):
            queue.connection.delete(key)
    yield


@pytest.fixture
def users(db):
    """One user per role, named as seed_demo names them, plus a superuser."""
    return {
        "ce": make_user("ce", "CE"),
        "sales": make_user("sales", "Sales"),
        "lead": make_user("lead", "CE Leadership"),
        "reviewer": make_user("reviewer", "Tech Review"),
        "devops": make_user("devops", "DevOps"),
        "devops2": make_user("devops2", "DevOps"),
        "manager": make_user("manager", "Managers"),
        "admin": make_user("admin", superuser=True),
    }


@pytest.fixture
def roles(db):
    return {group.name: group for group in Group.objects.all()}
