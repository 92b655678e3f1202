"""Run-start benchmark: from DevOps pressing `plan` (POST /api/v1/requests/{id}/actions/plan/
with an API token, to gunicorn as docker-compose.yml's web service runs it) to the worker
beginning `terraform init` for the run, with a warm worker: `manage.py rqworker default
provisioning --with-scheduler` as docker-compose.yml's worker runs it, on the sandbox
provisioning backend (the sandbox Compute server, the sandbox Terraform module), up and given
one plan (reported, not counted) before the timed ones, gunicorn's workers past their first
requests. Each timed plan is of a create request that DevOps has picked up, one at a time with
the worker idle. The instant Terraform starts is the one the run records, its `init` step's
started_at (provisioning/execute.py writes it just before it starts `terraform init`). Goal
(issue 16): median under 1 s; the max is printed too, with where the time goes (the action and
its commit, Redis to the work horse, the horse to the run claimed, the claim to `terraform
init`). Writes bench/results-runstart.md.

    make bench            # or: python bench/run_start.py [--runs 10]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import common
import requests as http
from common import ROOT, Processes, gunicorn, machine, people, production_settings, setup

from portal import devservices

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=10, help="timed plans")
parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (production: 3)")
args = parser.parse_args()

GOAL_SECONDS = 1.0
RESULTS = Path(__file__).resolve().parent / "results-runstart.md"
# Workspaces (and the sandbox's VMs) in a folder of this run's, removed at the end.
VAR = Path(tempfile.mkdtemp(prefix="bench-runstart-"))
SANDBOX_PORT = devservices.free_port()

production_settings()
os.environ.update(
    PROVISIONING_BACKEND="sandbox",
    SANDBOX_COMPUTE_URL=f"http://127.0.0.1:{SANDBOX_PORT}",
    PORTAL_VAR_DIR=str(VAR),
)
# A new database each time: the runs' Terraform state lives in it (the pg backend).
setup("bench_runstart", fresh=True)

import django_rq  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from rq import Worker  # noqa: E402
from rq.job import Job  # noqa: E402

from accounts import tokens  # noqa: E402
from provisioning.models import Run  # noqa: E402
from provisioning.runs import job_id  # noqa: E402
from requests_app import workflow  # noqa: E402
from requests_app.forms import FORMS  # noqa: E402

# (label, from, to): the stretches between the instants each run leaves behind.
STRETCHES = [
    ("POST to the action (HTTP, sign-in by token, the view)", "post", "action"),
    ("the action, its commit, the job in Redis", "action", "queued"),
    ("Redis to the work horse (dequeue, fork)", "queued", "horse"),
    ("the horse to the run claimed (imports, queries)", "horse", "claimed"),
    ("the claim to `terraform init` (workspace written)", "claimed", "init"),
]


def requests_in_progress(count):
    """`count` create requests, approved and picked up by DevOps: each waits for `plan`."""
    User = get_user_model()
    ids = people()
    ce, lead, devops = (User.objects.get(pk=ids[n]) for n in ("ce", "lead", "devops1"))
    made = []
    for i in range(count):
        form = FORMS["create"](
            data={"instance": f"bench-run-{i}", "customer": "Bench Inc", "users": "100"}
        )
        assert form.is_valid(), form.errors
        request = workflow.file_request(ce, "create", form.cleaned_data, notify=False)
        workflow.perform(lead, request.pk, "approve", notify=False)
        workflow.perform(devops, request.pk, "pick_up", notify=False)
        made.append(request.pk)
    _, key = tokens.create(devops, "bench-run-start")
    return made, key


QUEUES = ("default", "provisioning")


def start_worker(processes):
    """The worker as docker-compose.yml runs it."""
    for name in QUEUES:
        django_rq.get_queue(name).empty()  # nothing left from an earlier run goes first
    cmd = [sys.executable, str(ROOT / "manage.py"), "rqworker", *QUEUES, "--with-scheduler"]
    proc = processes.start("worker", cmd)
    wait_idle(proc, processes, 60)
    return proc


def wait_idle(proc, processes, seconds=120):
    """Until the worker waits on Redis again with nothing queued (a plan's notifications, on
    the default queue, come after it)."""
    connection = django_rq.get_connection("provisioning")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        idle = any(w.pid == proc.pid and w.state == "idle" for w in Worker.all(connection))
        if idle and not any(django_rq.get_queue(name).count for name in QUEUES):
            time.sleep(0.2)  # from marking itself idle to its BLPOP
            return
        time.sleep(0.1)
    raise SystemExit(f"the worker is not waiting for work:\n{processes.tail('worker')}")


def when(text):
    return datetime.fromisoformat(text).timestamp()


def epoch(moment):
    """rq's datetimes are UTC, naive in some versions."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def warm_web(url, key, request_id):
    """Every gunicorn worker past its first request (its first connection, lazy imports): a few
    rounds of concurrent reads, as the portal's other traffic would have done."""
    session = http.Session()
    session.headers["Authorization"] = f"Token {key}"
    with ThreadPoolExecutor(2 * args.workers) as pool:
        for _ in range(3):
            answers = pool.map(
                lambda _: session.get(f"{url}/api/v1/requests/{request_id}/").status_code,
                range(2 * args.workers),
            )
            if set(answers) != {200}:
                raise SystemExit(f"the API answered {sorted(set(answers))}")


def plan(url, key, request_id):
    """Press `plan`, wait for the run to be planned; the instants it went through."""
    session = http.Session()
    session.headers["Authorization"] = f"Token {key}"
    post = time.time()
    answer = session.post(f"{url}/api/v1/requests/{request_id}/actions/plan/", json={})
    answered = time.time()
    if answer.status_code != 200:
        raise SystemExit(f"plan of request {request_id}: {answer.status_code} {answer.text}")
    # The worker records its instants: wait, without polling hard, until the plan is done.
    deadline = time.monotonic() + 300
    while True:
        run = Run.objects.filter(request_id=request_id).order_by("-id").first()
        if run is not None and run.state in ("planned", "errored"):
            break
        if time.monotonic() > deadline:
            state = run.state if run else "no run"
            raise SystemExit(f"request {request_id}'s run is still {state} after 300 s")
        time.sleep(0.25)
    if run.state == "errored":
        raise SystemExit(f"run {run.pk} errored: {run.error}\n{run.log[-2000:]}")
    steps = {step["name"]: step for step in run.steps}
    job = Job.fetch(job_id(run.pk, "plan"), connection=django_rq.get_connection("provisioning"))
    return {
        "post": post,
        "answered": answered,
        "action": run.created_at.timestamp(),
        "queued": epoch(job.enqueued_at),
        "horse": epoch(job.started_at),
        "claimed": run.started_at.timestamp(),
        "init": when(steps["init"]["started_at"]),
        "planned": when(steps["plan"]["finished_at"]),
    }


def start_sandbox(processes):
    cmd = [sys.executable, "-m", "provisioning.sandbox.server", "--host", "127.0.0.1"]
    cmd += ["--port", str(SANDBOX_PORT), "--state", str(VAR / "compute.json"), "--quiet"]
    proc = processes.start("sandbox", cmd)
    deadline = time.monotonic() + 30
    while not devservices.answers("127.0.0.1", SANDBOX_PORT, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                f"the sandbox Compute server did not start:\n{processes.tail('sandbox')}"
            )
        time.sleep(0.2)


def main():
    try:
        with Processes(VAR) as processes:
            start_sandbox(processes)
            request_ids, key = requests_in_progress(args.runs + 1)
            url = gunicorn(processes, args.workers)
            worker = start_worker(processes)
            print(f"gunicorn ({args.workers} workers) at {url}, a worker and the sandbox up")
            warm_web(url, key, request_ids[0])
            first = plan(url, key, request_ids[0])
            timed = []
            for request_id in request_ids[1:]:
                wait_idle(worker, processes)
                timed.append(plan(url, key, request_id))
    finally:
        shutil.rmtree(VAR, ignore_errors=True)
    report(first, timed)


def report(first, timed):
    totals = [t["init"] - t["post"] for t in timed]
    median, longest = statistics.median(totals), max(totals)
    ok = median < GOAL_SECONDS
    lines = [
        f"# Run start ({len(timed)} plans, a warm worker)",
        "",
        f"Machine: {machine()}; load average (1 min) {os.getloadavg()[0]:.2f} at the end.",
        "",
        "POST /api/v1/requests/{id}/actions/plan/ (an API token of DevOps) to gunicorn with "
        f"{args.workers} workers, DEBUG off; `manage.py rqworker default provisioning "
        "--with-scheduler`, started and given one plan before these; the sandbox backend. Each "
        "plan of a create request picked up by DevOps, the worker idle. Seconds.",
        "",
        "| | median | max |",
        "|---|---:|---:|",
        f"| **plan pressed to `terraform init`** | **{median:.3f}** | **{longest:.3f}** |",
    ]
    for label, start, end in STRETCHES:
        spans = [t[end] - t[start] for t in timed]
        lines.append(f"| {label} | {statistics.median(spans):.3f} | {max(spans):.3f} |")
    answered = [t["answered"] - t["post"] for t in timed]
    planned = [t["planned"] - t["init"] for t in timed]
    lines += [
        f"| (the POST answered) | {statistics.median(answered):.3f} | {max(answered):.3f} |",
        f"| (`terraform init` to the plan saved) | {statistics.median(planned):.3f} | "
        f"{max(planned):.3f} |",
        "",
        f"The first plan after the worker started (not counted): "
        f"{first['init'] - first['post']:.3f} s to `terraform init`.",
        "",
        f"- median {median:.3f} s (goal < {GOAL_SECONDS:g} s): {'pass' if ok else 'FAIL'}; "
        f"max {longest:.3f} s",
    ]
    if not ok:
        slowest = max(STRETCHES, key=lambda s: statistics.median(t[s[2]] - t[s[1]] for t in timed))
        lines.append(f"- most of it: {slowest[0]}")
    common.write_results(RESULTS, "\n".join(lines))
    if not ok:
        raise SystemExit(1)


main()
