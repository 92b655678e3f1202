"""The simulated people of bench/load.py: every role of the portal signs in through the sign-in
form and then reads its main pages and the JSON API (with its own API token), 1-3 s of think
time between steps. Read-only: nothing is filed or changed, so a run leaves the data as it was.

bench/load.py runs this file in a process of its own (locust patches the standard library for
gevent as it is imported), headless, through locust's library API (`main()` below), and reads
back every request it made. The people come from the JSON file named by BENCH_LOAD_CAST:

    {"password": "...", "requests": 100000, "instances": 1000,
     "roles": {"CE": [{"username": "ce", "token": "mip_..."}], "DevOps": [...], ...}}

    python bench/loadtest/locustfile.py --host URL --cast FILE --out FILE [--users 50]
        [--spawn-rate 10] [--duration 60]
    BENCH_LOAD_CAST=FILE locust -f bench/loadtest/locustfile.py --host URL   # locust's web UI
"""

import argparse
import json
import os
import random
import re
import time

import gevent
from locust import HttpUser, between, events
from locust.env import Environment

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SIGN_IN = "sign in"
_cast = {}


def cast():
    if not _cast:
        with open(os.environ["BENCH_LOAD_CAST"]) as file:
            _cast.update(json.load(file))
    return _cast


class Person(HttpUser):
    abstract = True
    wait_time = between(1, 3)
    role = ""

    def on_start(self):
        people = cast()
        person = random.choice(people["roles"][self.role])
        self.username = person["username"]
        self.api_headers = {"Authorization": f"Token {person['token']}"}
        self.requests = people["requests"]
        self.instances = people["instances"]
        with self.client.get("/login/", name="sign-in form", catch_response=True) as form:
            found = CSRF.search(form.text or "")
            if form.status_code != 200 or not found:
                form.failure(f"no sign-in form ({form.status_code})")
                return
        body = {
            "username": person["username"],
            "password": people["password"],
            "csrfmiddlewaretoken": found.group(1),
        }
        with self.client.post(
            "/login/", data=body, name=SIGN_IN, allow_redirects=False, catch_response=True
        ) as answer:
            if answer.status_code != 302 or answer.headers.get("Location") != "/":
                answer.failure(f"not signed in ({answer.status_code})")

    def context(self):
        return {"username": getattr(self, "username", "")}

    # -- what people do ---------------------------------------------------------------------

    def page(self, url, name=None):
        """A page, as a signed-in browser asks for it: 200, not a redirect to the sign-in."""
        with self.client.get(
            url, name=name or url, allow_redirects=False, catch_response=True
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code} {answer.headers.get('Location', '')}")

    def api(self, url, name=None):
        with self.client.get(
            url, name=name or url, headers=self.api_headers, catch_response=True
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")

    def request_id(self):
        return random.randint(1, self.requests)

    def instance_slug(self):
        return f"bench-i{random.randrange(self.instances)}"


# The names of the endpoints with an id, a slug or a search in their URL stand for all of them
# ([id], [slug], [customer]); bench/load.py fills them in to ask for one of each alone.


def home(user):
    user.page("/")


def request_list(user):
    user.page("/requests/")


def my_requests(user):
    user.page("/requests/mine/")


def search(user):
    user.page(f"/requests/?q=Customer+{random.randrange(400):03d}", "/requests/?q=[customer]")


def request_detail(user):
    user.page(f"/requests/{user.request_id()}/", "/requests/[id]/")


def approvals(user):
    user.page("/approvals/")


def queue(user):
    user.page("/queue/")


def instance_list(user):
    user.page("/instances/")


def instance_detail(user):
    user.page(f"/instances/{user.instance_slug()}/", "/instances/[slug]/")


def sla_dashboard(user):
    user.page("/dashboards/sla/")


def board(user):
    user.page("/dashboards/board/")


def fleet(user):
    user.page("/dashboards/fleet/")


def api_requests(user):
    user.api("/api/v1/requests/")


def api_request(user):
    user.api(f"/api/v1/requests/{user.request_id()}/", "/api/v1/requests/[id]/")


def api_sla_summary(user):
    user.api("/api/v1/sla/summary/")


def api_instances(user):
    user.api("/api/v1/instances/")


def api_instance(user):
    user.api(f"/api/v1/instances/{user.instance_slug()}/", "/api/v1/instances/[slug]/")


# The roles (docs/workflow.md), weighted as the portal's people are many or few: the weight is
# how many of 50 simulated people hold the role; each one's tasks are weighted by how often that
# role does it. Requesters follow their own requests; approvers work their inbox; Managers read
# the figures; DevOps work the queue and the board and script against the API.


class CE(Person):
    role = "CE"
    weight = 15
    tasks = {
        home: 3,
        my_requests: 3,
        request_detail: 4,
        request_list: 1,
        search: 1,
        instance_list: 1,
        instance_detail: 1,
        api_request: 1,
    }


class Sales(Person):
    role = "Sales"
    weight = 7
    tasks = {home: 3, my_requests: 3, request_detail: 3, search: 1, instance_detail: 1}


class CELeadership(Person):
    role = "CE Leadership"
    weight = 5
    tasks = {approvals: 4, request_detail: 3, home: 2, sla_dashboard: 1, request_list: 1}


class TechReview(Person):
    role = "Tech Review"
    weight = 3
    tasks = {approvals: 4, request_detail: 3, home: 1, request_list: 1}


class Managers(Person):
    role = "Managers"
    weight = 6
    tasks = {
        sla_dashboard: 3,
        board: 2,
        api_sla_summary: 2,
        fleet: 1,
        home: 1,
        request_list: 1,
        approvals: 1,
    }


class DevOps(Person):
    role = "DevOps"
    weight = 14
    tasks = {
        queue: 4,
        request_detail: 3,
        board: 2,
        api_requests: 2,
        api_request: 2,
        home: 1,
        instance_list: 1,
        instance_detail: 1,
        fleet: 1,
        api_instances: 1,
        api_instance: 1,
    }


ROLES = [CE, Sales, CELeadership, TechReview, Managers, DevOps]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--cast", required=True, help="the people's JSON file")
    parser.add_argument("--out", required=True, help="where every request is written (JSON)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", type=float, default=60, help="seconds after all signed in")
    parser.add_argument("--sign-in-timeout", type=float, default=120)
    args = parser.parse_args()
    os.environ["BENCH_LOAD_CAST"] = args.cast

    samples, user_errors = [], []
    signed_in = {"count": 0, "all_at": None}

    def on_request(request_type, name, response_time, exception, context, start_time=None, **_):
        ended = time.time()
        started = start_time if start_time is not None else ended - response_time / 1000
        samples.append(
            {
                "name": name,
                "method": request_type,
                "ms": response_time,
                "start": started,
                "end": ended,
                "error": "" if exception is None else str(exception)[:300],
                "username": (context or {}).get("username", ""),
            }
        )
        if name == SIGN_IN and exception is None:
            signed_in["count"] += 1
            if signed_in["count"] >= args.users and signed_in["all_at"] is None:
                signed_in["all_at"] = ended

    def on_user_error(user_instance, exception, tb, **_):
        user_errors.append(f"{type(user_instance).__name__}: {exception!r}"[:300])

    environment = Environment(user_classes=ROLES, host=args.host, events=events)
    environment.events.request.add_listener(on_request)
    environment.events.user_error.add_listener(on_user_error)
    runner = environment.create_local_runner()
    started = time.time()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    # The measured stretch starts when the last of them has signed in (sign-ins, a deliberately
    # slow password hash each, are reported on their own) and lasts --duration seconds.
    deadline = started + args.sign_in_timeout
    while signed_in["all_at"] is None and time.time() < deadline:
        gevent.sleep(0.1)
    steady_from = signed_in["all_at"] or time.time()
    gevent.sleep(max(0.0, steady_from + args.duration - time.time()))
    steady_to = time.time()
    users = dict(runner.user_classes_count)
    runner.quit()
    runner.greenlet.join()
    with open(args.out, "w") as file:
        json.dump(
            {
                "started": started,
                "steady_from": steady_from,
                "steady_to": steady_to,
                "all_signed_in": signed_in["all_at"] is not None,
                "signed_in": signed_in["count"],
                "users": users,
                "samples": samples,
                "user_errors": user_errors,
            },
            file,
        )


if __name__ == "__main__":
    main()
