"""The provisioning engine end to end: real Terraform on the sandbox module, real RQ workers on
the real Redis, the sandbox Compute server seen through google-cloud-compute."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from portal import devservices
from provisioning import runs
from provisioning.compute import Compute
from provisioning.models import Instance, Run
from provisioning.sandbox.server import start_in_thread
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Notification, Request
from tests.factories import make_user

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,
    # Left out of the date rerun (tests/clock.py): time-machine moves only this process's clock.
    pytest.mark.clock_real(
        "RQ worker subprocesses keep real time: they stamp heartbeats and runs with the real "
        "clock, which the reconciler and relays in this process compare with its own"
    ),
]


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "devops": make_user("devops", "DevOps"),
        "devops2": make_user("devops2", "DevOps"),
    }


@pytest.fixture
def sandbox(settings, tmp_path):
    url, server = start_in_thread(port=0)
    settings.SANDBOX_COMPUTE_URL = url
    settings.PROVISIONING_BACKEND = "sandbox"
    settings.VAR_DIR = tmp_path / "var"
    yield url
    server.stop()


class Worker:
    """`manage.py rqworker` in its own process group, on the test database."""

    def __init__(self, sandbox_url, var_dir, redis_url=None):
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}"
            f":{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": redis_url or os.environ["REDIS_URL"],
            "SANDBOX_COMPUTE_URL": sandbox_url,
            "PORTAL_VAR_DIR": str(var_dir),
            "PROVISIONING_BACKEND": "sandbox",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", "provisioning", "default"],
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        return self

    def kill(self, sig=signal.SIGKILL):
        """Signal the worker and, for SIGKILL, everything it started: RQ's work horse and
        Terraform run in sessions of their own, and a dead machine takes them all."""
        if not self.process or self.process.poll() is not None:
            return
        family = descendants(self.process.pid) if sig == signal.SIGKILL else []
        os.killpg(self.process.pid, sig)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A warm shutdown waits for the job in hand; a worker still busy after 30 s (a slow
            # machine) is killed with all it started, so that it never takes a later test's job.
            self.kill(signal.SIGKILL)


def descendants(pid):
    """Every process below `pid`, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture
def worker_factory(sandbox, settings):
    started = []

    def make(redis_url=None, sandbox_url=None):
        worker = Worker(sandbox_url or sandbox, settings.VAR_DIR, redis_url).start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.kill(signal.SIGTERM)


def file(user, kind, slug, **data):
    form = FORMS[kind](data={"instance": slug, "customer": "Flow Inc", **data})
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, notify=False)


def to_in_progress(people, request):
    workflow.perform(people["lead"], request.pk, "approve", notify=False)
    workflow.perform(people["devops"], request.pk, "pick_up", notify=False)


def wait_for_run(request_id, states, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.latest_run(request_id)
        if run is not None and run.state in states:
            return run
        time.sleep(0.3)
    run = runs.latest_run(request_id)
    raise AssertionError(f"run never reached {states}: {run and run.state}\n{run and run.log}")


def plan_and_apply(people, request, **confirm):
    workflow.perform(people["devops"], request.pk, "plan", notify=False)
    planned = wait_for_run(request.pk, ("planned", "errored"))
    assert planned.state == "planned", planned.log
    workflow.perform(people["devops"], request.pk, "confirm", notify=False, **confirm)
    applied = wait_for_run(request.pk, ("applied", "errored"))
    assert applied.state == "applied", f"{applied.error}\n{applied.log}"
    request.refresh_from_db()
    assert request.state == "done"
    return planned


def vm_status(sandbox_url, slug, color="blue"):
    return Compute(sandbox_url, timeout=30).get_instance_status(
        f"mi-{slug}", "us-central1-f", f"{slug}-{color}"
    )


def test_every_kind_through_a_real_worker(people, sandbox, worker_factory):
    worker_factory()
    create = file(people["ce"], "create", "flowco", users="100")
    to_in_progress(people, create)
    plan = plan_and_apply(people, create)
    assert plan.plan_summary["add"] > 0 and "terraform_data" in plan.plan_text
    instance = Instance.objects.get(slug="flowco")
    assert instance.status == "active" and instance.outputs["terraform"]["instance_name"]
    assert vm_status(sandbox, "flowco") == "RUNNING"
    events = set(create.events.values_list("action", flat=True))
    assert {"plan", "run_planned", "confirm", "run_step", "complete"} <= events

    suspend = file(people["ce"], "suspend", "flowco")
    to_in_progress(people, suspend)
    plan_and_apply(people, suspend)
    instance.refresh_from_db()
    assert instance.status == "suspended" and instance.outputs["snapshot"]
    assert vm_status(sandbox, "flowco") is None
    compute = Compute(sandbox, timeout=30)
    assert [s.name for s in compute.list_snapshots("mi-flowco", "flowco")] == [
        instance.outputs["snapshot"]
    ]

    resume = file(people["ce"], "resume", "flowco")
    to_in_progress(people, resume)
    plan_and_apply(people, resume)
    instance.refresh_from_db()
    assert instance.status == "active" and vm_status(sandbox, "flowco") == "RUNNING"

    upgrade = file(people["ce"], "upgrade", "flowco", target_version="6.2.0")
    to_in_progress(people, upgrade)
    plan_and_apply(people, upgrade)
    instance.refresh_from_db()
    assert instance.version == "6.2.0" and instance.outputs["color"] == "green"
    assert vm_status(sandbox, "flowco", "green") == "RUNNING"
    assert vm_status(sandbox, "flowco", "blue") is None

    executors = file(people["ce"], "enable_executors", "flowco")
    to_in_progress(people, executors)
    plan_and_apply(people, executors)
    instance.refresh_from_db()
    assert instance.executors_enabled

    teardown = file(people["ce"], "teardown", "flowco", confirm="flowco")
    to_in_progress(people, teardown)
    workflow.perform(people["devops"], teardown.pk, "plan", notify=False)
    wait_for_run(teardown.pk, ("planned",))
    # Four eyes: whoever planned the teardown may not confirm it; a second person types the slug.
    with pytest.raises(workflow.Forbidden):
        workflow.perform(people["devops"], teardown.pk, "confirm", confirm="flowco", notify=False)
    with pytest.raises(workflow.Invalid):
        workflow.perform(people["devops2"], teardown.pk, "confirm", confirm="flowc", notify=False)
    workflow.perform(people["devops2"], teardown.pk, "confirm", confirm="flowco", notify=False)
    assert wait_for_run(teardown.pk, ("applied", "errored")).state == "applied"
    instance.refresh_from_db()
    assert instance.status == "torn_down"
    assert vm_status(sandbox, "flowco", "green") is None
    assert compute.list_snapshots("mi-flowco", "flowco") == []


def test_one_active_run_per_instance_and_discard(people, sandbox, worker_factory):
    worker_factory()
    create = file(people["ce"], "create", "solo")
    to_in_progress(people, create)
    workflow.perform(people["devops"], create.pk, "plan", notify=False)
    with pytest.raises(workflow.Conflict):
        workflow.perform(people["devops"], create.pk, "plan", notify=False)
    wait_for_run(create.pk, ("planned",))
    with pytest.raises(workflow.Conflict):  # no cancel while... planned is fine; applying not
        workflow.perform(people["devops"], create.pk, "retry", notify=False)
    workflow.perform(people["devops"], create.pk, "discard", notify=False)
    assert runs.latest_run(create.pk).state == "discarded"
    plan_and_apply(people, create)
    assert Run.objects.filter(request_id=create.pk).count() == 2


def test_a_worker_killed_mid_apply_is_reconciled_and_a_retry_converges(
    people, sandbox, worker_factory, settings
):
    # A slow sandbox (about 6 s an operation) so the apply is caught half way.
    slow_url, slow = start_in_thread(port=0, speed=0.05)
    settings.SANDBOX_COMPUTE_URL = slow_url
    try:
        worker = worker_factory(sandbox_url=slow_url)
        create = file(people["ce"], "create", "phoenix")
        to_in_progress(people, create)
        workflow.perform(people["devops"], create.pk, "plan", notify=False)
        wait_for_run(create.pk, ("planned",))
        workflow.perform(people["devops"], create.pk, "confirm", notify=False)
        run = wait_for_run(create.pk, ("applying",))
        deadline = time.monotonic() + 120
        while "cli register" not in Run.objects.get(pk=run.pk).log:
            assert time.monotonic() < deadline, Run.objects.get(pk=run.pk).log
            time.sleep(0.3)
        worker.kill(signal.SIGKILL)
        run.refresh_from_db()
        assert run.state == "applying"

        # The reconciler sees the heartbeat stop and frees the instance.
        later = timezone.now() + timedelta(seconds=settings.PROVISIONING_HEARTBEAT_TIMEOUT + 5)
        assert runs.reconcile_runs(now=later) == 1
        run.refresh_from_db()
        assert run.state == "errored" and run.error_code == "worker_lost"
        assert runs.active_run(run.instance_id) is None
        create.refresh_from_db()
        assert "retry" in workflow.allowed_actions(people["devops"], create)

        worker_factory(sandbox_url=slow_url)
        workflow.perform(people["devops"], create.pk, "retry", notify=False)
        wait_for_run(create.pk, ("planned",), timeout=240)
        workflow.perform(people["devops"], create.pk, "confirm", notify=False)
        final = wait_for_run(create.pk, ("applied", "errored"), timeout=300)
        assert final.state == "applied", f"{final.error}\n{final.log}"
        vms = Compute(slow_url, timeout=30).api.instances.list(
            project="mi-phoenix", zone="us-central1-f"
        )
        assert [vm.name for vm in vms] == ["phoenix-blue"]
    finally:
        slow.stop()


def test_nothing_is_lost_while_redis_is_down(people, sandbox, worker_factory, settings):
    from django_rq import settings as rq_settings

    var = Path(settings.VAR_DIR)
    var.mkdir(parents=True, exist_ok=True)
    port = devservices.free_port()
    devservices.VAR, saved_var = var, devservices.VAR
    url = devservices.start_private_redis(port=port)
    saved = {name: dict(conf) for name, conf in rq_settings.QUEUES.items()}
    for conf in rq_settings.QUEUES.values():
        conf["URL"] = url
    try:
        create = file(people["ce"], "create", "patient")
        devservices.stop_private_redis()
        deadline = time.monotonic() + 10
        while devservices.answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Redis is down: approving and planning still work, and nothing is lost.
        workflow.perform(people["lead"], create.pk, "approve")
        workflow.perform(people["devops"], create.pk, "pick_up")
        workflow.perform(people["devops"], create.pk, "plan")
        run = runs.latest_run(create.pk)
        assert run.state == "queued" and run.enqueued_at is None
        assert Notification.objects.filter(status="pending").exists()

        devservices.start_private_redis(port=port)
        worker_factory(redis_url=url)
        assert runs.relay_runs() == 1
        assert wait_for_run(create.pk, ("planned", "errored")).state == "planned"
        later = timezone.now() + timedelta(minutes=5)
        from requests_app.jobs import relay_notifications

        assert relay_notifications(now=later) >= 1
        deadline = time.monotonic() + 60
        while Notification.objects.exclude(status="sent").exists():
            assert time.monotonic() < deadline, list(Notification.objects.values("status"))
            time.sleep(0.3)
    finally:
        for name, conf in saved.items():
            rq_settings.QUEUES[name].update(conf)
        devservices.stop_private_redis()
        devservices.VAR = saved_var
    assert Request.objects.get(pk=create.pk).state == "in_progress"


NEG_MESSAGE = (
    "The network_endpoint_group resource 'projects/mi-negco/zones/us-central1-f/"
    "networkEndpointGroups/default-neg' is already being used by 'projects/mi-negco/global/"
    "backendServices/default-backend-service'"
)


def inject(sandbox_url, times):
    import requests

    response = requests.post(
        f"{sandbox_url}/_sandbox/faults",
        json={
            "method": "POST",
            "path_regex": r"/instances$",
            "status": 400,
            "reason": "resourceInUseByAnotherResource",
            "message": NEG_MESSAGE,
            "times": times,
        },
        timeout=10,
    )
    response.raise_for_status()


@pytest.mark.parametrize("failures,outcome", [(1, "applied"), (10, "errored")])
def test_the_known_neg_error_is_retried_once_then_shown_with_the_workaround(
    people, sandbox, worker_factory, failures, outcome
):
    worker = worker_factory()
    worker.kill(signal.SIGTERM)
    worker.env["PROVISIONING_BACKOFF_PERCENT"] = "0"
    worker.start()
    create = file(people["ce"], "create", "negco")
    to_in_progress(people, create)
    workflow.perform(people["devops"], create.pk, "plan", notify=False)
    wait_for_run(create.pk, ("planned",))
    inject(sandbox, failures)
    workflow.perform(people["devops"], create.pk, "confirm", notify=False)
    run = wait_for_run(create.pk, ("applied", "errored"))
    assert run.state == outcome, run.log
    if outcome == "errored":
        assert run.error_code == "neg_in_use"
        assert "delete the backend service" in run.workaround
        assert "neg_in_use: retry 1 of 1" in run.log
        assert Instance.objects.get(slug="negco").status == "failed"
    else:
        assert "neg_in_use: retry 1 of 1" in run.log


def test_a_stale_plan_is_refused(people, sandbox, worker_factory):
    worker_factory()
    create = file(people["ce"], "create", "staleco")
    to_in_progress(people, create)
    workflow.perform(people["devops"], create.pk, "plan", notify=False)
    run = wait_for_run(create.pk, ("planned",))
    # The module changed after the plan was made.
    Run.objects.filter(pk=run.pk).update(inputs_digest="0" * 64)
    workflow.perform(people["devops"], create.pk, "confirm", notify=False)
    run = wait_for_run(create.pk, ("errored",))
    assert run.error_code == "stale_plan" and "stale" in run.error
    assert vm_status(sandbox, "staleco") is None


def test_a_job_timeout_stops_terraform_cleanly(people, sandbox, worker_factory, settings):
    slow_url, slow = start_in_thread(port=0, speed=0.01)  # 30 s an operation
    settings.SANDBOX_COMPUTE_URL = slow_url
    try:
        worker_factory(sandbox_url=slow_url)
        settings.PROVISIONING_JOB_TIMEOUT = 15  # the job is enqueued with it
        create = file(people["ce"], "create", "slowco")
        to_in_progress(people, create)
        workflow.perform(people["devops"], create.pk, "plan", notify=False)
        wait_for_run(create.pk, ("planned",), timeout=120)
        workflow.perform(people["devops"], create.pk, "confirm", notify=False)
        run = wait_for_run(create.pk, ("errored", "applied"), timeout=180)
        assert run.state == "errored", run.log
        assert "PROVISIONING_JOB_TIMEOUT" in run.error
        workspace_dir = str(Path(settings.VAR_DIR) / "workspaces")
        leftover = subprocess.run(["pgrep", "-f", workspace_dir], capture_output=True, text=True)
        assert leftover.stdout.strip() == ""
        assert runs.active_run(run.instance_id) is None
    finally:
        slow.stop()


def test_a_plan_that_breaks_a_guard_errors_naming_the_resource(people, sandbox, worker_factory):
    worker_factory()
    create = file(people["ce"], "create", "guarded")
    to_in_progress(people, create)
    plan_and_apply(people, create)
    instance = Instance.objects.get(slug="guarded")
    # The record says another zone than the one Terraform built in: following it would replace
    # the data disk, which an enable_executors run may never do.
    variables = {**instance.outputs["variables"], "zone": "us-central1-a"}
    instance.outputs = {**instance.outputs, "variables": variables}
    instance.save()
    executors = file(people["ce"], "enable_executors", "guarded")
    to_in_progress(people, executors)
    workflow.perform(people["devops"], executors.pk, "plan", notify=False)
    run = wait_for_run(executors.pk, ("planned", "errored"))
    assert (run.state, run.error_code) == ("errored", "plan_guard"), run.log
    assert "terraform_data.data_disk" in run.error and "data disk" in run.error
    assert run.plan_summary["violations"] and run.plan_text
    with pytest.raises(workflow.Conflict):
        workflow.perform(people["devops2"], executors.pk, "confirm", notify=False)
    assert vm_status(sandbox, "guarded") == "RUNNING"  # nothing was touched
