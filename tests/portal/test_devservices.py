"""make test finds PostgreSQL and Redis, or starts private ones under var/."""

import os
import shutil
import socket
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from portal import devservices

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_var(monkeypatch):
    # Under the project, not /tmp: the postgres account must be able to reach it when we are root.
    folder = ROOT / "var" / f"test-services-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    monkeypatch.setattr(devservices, "VAR", folder)
    yield folder
    devservices.stop_private_redis()
    devservices.stop_private_postgres()
    location = folder / "pgdata.location"
    if location.exists():
        shutil.rmtree(Path(location.read_text()).parent, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_uses_the_urls_from_the_environment_when_they_answer(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", os.environ["DATABASE_URL"])
    assert devservices.ensure_postgres() == os.environ["DATABASE_URL"]


def test_a_configured_url_that_does_not_answer_is_an_error(monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(devservices.ServiceError, match="does not answer"):
        devservices.ensure_redis()


def test_starts_a_private_redis_under_var(private_var):
    url = devservices.start_private_redis(port=free_port())
    assert redis.Redis.from_url(url).ping()
    assert (private_var / "redis" / "redis.pid").exists()


@pytest.mark.skipif(not devservices.pg_bin("initdb"), reason="needs PostgreSQL's server binaries")
def test_starts_a_private_postgres_under_var(private_var):
    url = devservices.start_private_postgres(port=free_port())
    with psycopg.connect(url.replace("/portal", "/postgres")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    data = Path((private_var / "pgdata.location").read_text())
    assert (data / "PG_VERSION").exists()


def test_missing_binaries_name_the_package_to_install(private_var, monkeypatch):
    monkeypatch.setattr(devservices, "pg_bin", lambda name: None)
    with pytest.raises(devservices.ServiceError, match="apt-get install postgresql"):
        devservices.start_private_postgres(port=free_port())
    monkeypatch.setattr(devservices.shutil, "which", lambda name: None)
    with pytest.raises(devservices.ServiceError, match="apt-get install redis-server"):
        devservices.start_private_redis(port=free_port())
