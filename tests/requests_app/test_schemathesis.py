"""Schemathesis against the live test server: every check it has, from the schema at
/api/schema/, as a DevOps engineer and as a CE (docs/api.md).

The run is the `schemathesis run` command line, so what fails here fails the same way for
anyone who points schemathesis at the portal. It is bounded: 10 examples per operation in
deterministic mode (no randomness, no example database), one worker, all four phases
(examples, coverage, fuzzing, stateful); it takes about a minute per identity. Most path ids
and slugs it draws name the seeded rows (`dictionaries`), so actions, comments and details reach
their validation and their state checks instead of stopping at a 404.

One check is loosened, for five operations only: `positive_data_acceptance` also accepts a 400
from them, because there what makes schema-valid data right depends on the data or the clock,
which no OpenAPI schema can say (each operation's description in the schema lists these rules):

- POST /api/v1/requests/: the instance must exist and be in a state that allows the kind, a new
  slug must be free, no other open request may change the instance, an upgrade's version must be
  newer than the one running and its release date not in the future, a teardown's `confirm`
  must repeat the slug, an IP allowlist needs ranges and ranges need zero host bits.
- POST /api/v1/requests/{id}/actions/{action_name}/: `set_target` needs a `due_at` in the future
  (the body depends on the path's action), a teardown's `confirm` must repeat its slug.
- GET /api/v1/sla/summary/: `since` must come before `until` (whose default is the end of
  today) and both within the SLA calendar's days.
- POST /api/v1/incidents/: each slug must name a live instance.
- POST /api/v1/incidents/{id}/actions/{action_name}/: `resolve` of a sev1 or sev2 incident needs
  a `postmortem_url` (the incident's severity decides), `commander` must name a DevOps member.

Everything else, including the 400s of these operations for data the schema already calls
invalid, is checked in full: no 500, only documented status codes and content types, bodies as
the schema says, schema-invalid input refused, auth enforced.
"""

import json
import re
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token

from incidents.models import IncidentState
from provisioning.models import Instance
from requests_app.models import State
from tests.incidents.factories import incident_in_state
from tests.requests_app.test_api import make_instance, request_in_state

pytestmark = [
    pytest.mark.clock,  # the seeded requests are filed and acted on now
    pytest.mark.clock_real("schemathesis runs in a process of its own, on the real clock"),
    pytest.mark.lane2,  # minutes of fuzzing: make test runs it beside the suite
]

CONFIG = """
[generation]
max-examples = 10
deterministic = true
database = "none"

# positive_data_acceptance: see the module's docstring for why these three may answer 400.
[[operations]]
include-method = "POST"
include-path = "/api/v1/requests/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-method = "POST"
include-path = "/api/v1/requests/{id}/actions/{action_name}/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-method = "GET"
include-path = "/api/v1/sla/summary/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-method = "POST"
include-path = "/api/v1/incidents/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-method = "POST"
include-path = "/api/v1/incidents/{id}/actions/{action_name}/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""


def seed(users):
    """Instances in each status a kind needs and requests in every state, so that reads find
    rows and actions meet states where they are allowed as well as where they are not.
    Returns the request ids and the instance slugs."""
    slugs = [
        make_instance("acme", version="5.2.0").slug,
        make_instance("globex", status="suspended").slug,
        make_instance("initech", executors_enabled=True).slug,
        make_instance("oldco", status="torn_down").slug,
        make_instance("dogfood", category="internal").slug,
    ]
    ids = []
    for state, kind in [
        (State.PENDING_APPROVAL, "create"),
        (State.PENDING_APPROVAL, "suspend"),
        (State.TECH_REVIEW, "feature"),
        (State.QUEUED, "feature"),
        (State.QUEUED, "upgrade"),
        (State.IN_PROGRESS, "feature"),
        (State.IN_PROGRESS, "teardown"),
        (State.IN_PROGRESS, "create"),
        (State.WAITING_ON_CUSTOMER, "enable_executors"),
        (State.DONE, "resume"),
        (State.REJECTED, "feature"),
        (State.CANCELLED, "create"),
        (State.PENDING_APPROVAL, "access"),
        (State.IN_PROGRESS, "access"),
        (State.DONE, "access"),
    ]:
        request = request_in_state(users, state, kind=kind)
        ids.append(request.pk)
        if request.instance_id:
            slugs.append(request.instance_slug)
    acme = Instance.objects.get(slug="acme")
    incidents = [
        incident_in_state(users, state, acme, severity=severity).pk
        for state in IncidentState.values
        for severity in ("sev1", "sev3")
    ]
    return ids, sorted(set(slugs)), incidents


def dictionaries(ids, slugs, incidents):
    """Most ids and slugs schemathesis draws name seeded rows (else nearly every action, comment
    and detail would be a 404 before the body is even read); the rest it makes up."""
    return f"""
[dictionaries.requests]
values = {json.dumps(ids)}

[dictionaries.instances]
values = {json.dumps(slugs)}

[dictionaries.incidents]
values = {json.dumps(incidents)}

[[operations]]
include-path-regex = "^/api/v1/incidents/"
[operations.parameters]
"path.id" = {{ dictionary = "incidents", probability = 0.8 }}
"body.instances[*]" = {{ dictionary = "instances", probability = 0.8 }}

[parameters]
"path.id" = {{ dictionary = "requests", probability = 0.8 }}
"path.slug" = {{ dictionary = "instances", probability = 0.6 }}
"body.instance" = {{ dictionary = "instances", probability = 0.6 }}
"""


@pytest.mark.parametrize("who", ["devops", "ce"])
def test_schemathesis_finds_nothing(transactional_db, live_server, users, who, tmp_path):
    ids, slugs, incidents = seed(users)
    token = Token.objects.create(user=users[who])
    config = tmp_path / "schemathesis.toml"
    config.write_text(dictionaries(ids, slugs, incidents) + CONFIG)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{live_server.url}/api/schema/",
        "--checks",
        "all",
        "--header",
        f"Authorization: Token {token.key}",
        "--workers",
        "1",
        "--no-color",
    ]
    # In tmp_path: whatever schemathesis writes stays out of the work tree.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    # It did run: the summary counts the operations tested and the test cases.
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, \1 passed", output)
    assert tested and int(tested[1]) >= 8 and cases and int(cases[1]) > 500, output[-5000:]
