"""docker-compose.yml and the Dockerfile describe a portal that can really start."""

import importlib
import re
from pathlib import Path

import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services_with_health_checks_and_volumes():
    services = compose()["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    for name in ("web", "worker", "postgres", "redis"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in ("postgres", "redis"):
        assert services[name].get("volumes"), f"{name} keeps no data volume"
    assert set(compose()["volumes"]) >= {"postgres-data", "redis-data"}


def assert_entry_point(command):
    """A service command must name something this project really has."""
    program, *args = command
    if program == "gunicorn":
        target = next(a for a in args if re.fullmatch(r"[\w.]+:[\w]+", a))
        module, attr = target.split(":")
        assert hasattr(importlib.import_module(module), attr), target
    elif program == "python" and args[:1] == ["manage.py"]:
        assert args[1] in get_commands(), f"manage.py has no command {args[1]!r}"
    elif program == "redis-server":
        return
    else:
        raise AssertionError(f"unknown entry point {command}")


def test_every_project_service_runs_a_real_entry_point():
    services = compose()["services"]
    for service in services.values():
        if "build" not in service:
            continue
        assert_entry_point(service["command"])
        healthcheck = service.get("healthcheck", {}).get("test", [])
        if healthcheck[:2] == ["CMD", "python"] and "manage.py" in healthcheck:
            assert_entry_point(healthcheck[1:])


def test_worker_processes_both_queues_with_the_scheduler():
    command = compose()["services"]["worker"]["command"]
    assert {"default", "provisioning", "--with-scheduler"} <= set(command)


def test_dockerfile_installs_terraform_and_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "terraform" in dockerfile and "terraform version" in dockerfile
    assert "pip install" in dockerfile
    assert_entry_point(
        [
            "gunicorn",
            *re.search(r'CMD \["gunicorn", (.*)\]', dockerfile)
            .group(1)
            .replace('"', "")
            .split(", "),
        ]
    )
