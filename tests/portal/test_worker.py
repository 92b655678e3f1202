"""The RQ worker that `manage.py rqworker` starts: it loads the URL configuration before it
forks a child per job, so no job imports it again (the SLA sweep's alerts reverse URLs)."""

import os
import subprocess
import sys

SCRIPT = """
import sys, django
django.setup()
from django_rq import get_worker
before = "portal.urls" in sys.modules
worker = get_worker("default")
print(type(worker).__module__, type(worker).__name__, before, "portal.urls" in sys.modules)
"""


def test_the_worker_loads_the_url_configuration_before_any_job():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["portal.worker", "Worker", "False", "True"]
