"""Find or start the PostgreSQL and Redis that `make test` and `make run` need.

No Django here: this runs before the project's settings can be loaded. Usage:

    python -m portal.devservices test-env    # prints `export DATABASE_URL=... REDIS_URL=...` and
                                             # the test settings (portal.env.suite_environ)
    python -m portal.devservices stop        # stops the private servers under var/

Order of preference: the URLs in the environment, the servers on 127.0.0.1:5432 / :6379, and
last private servers under var/ started from the local binaries (as the `postgres` user when run
as root, since PostgreSQL refuses to run as root).
"""

import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
PRIVATE_PG_PORT = int(os.environ.get("PORTAL_PRIVATE_PG_PORT", "55432"))
PRIVATE_REDIS_PORT = int(os.environ.get("PORTAL_PRIVATE_REDIS_PORT", "56379"))
CHECKOUT = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]

PG_INSTALL_HINT = (
    "PostgreSQL is not running and its server binaries (initdb, pg_ctl) are not installed. "
    "Install them: `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql@16` "
    "(macOS), or set DATABASE_URL to a reachable server."
)
REDIS_INSTALL_HINT = (
    "Redis is not running and `redis-server` is not installed. Install it: "
    "`apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), "
    "or set REDIS_URL to a reachable server."
)


class ServiceError(RuntimeError):
    pass


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(host: str, port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(host, port, timeout=0.5):
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not start listening on {host}:{port} within {seconds}s")


def _url_host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


# -- PostgreSQL ------------------------------------------------------------------------------


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
        + glob.glob(f"/opt/homebrew/opt/postgresql@*/bin/{name}")
        + glob.glob(f"/usr/local/opt/postgresql@*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else x for x in p.replace("@", "/").split("/")],
    )
    return candidates[-1] if candidates else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` account when we are root."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


def _postgres_home() -> Path:
    """Where the private cluster lives: var/, or (as root, when the `postgres` account cannot
    reach var/, say in a 0700 home or temp folder) a folder of its own under /var/tmp."""
    if os.geteuid() != 0:
        return VAR
    reachable = (
        subprocess.run(_as_postgres_user(["test", "-x", str(VAR)]), capture_output=True).returncode
        == 0
    )
    if reachable:
        return VAR
    digest = hashlib.sha1(str(VAR.resolve()).encode()).hexdigest()[:12]
    home = Path("/var/tmp/managed-instance-portal") / digest
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home.parent, 0o755)
    os.chmod(home, 0o755)
    return home


def start_private_postgres(port: int = PRIVATE_PG_PORT) -> str:
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise ServiceError(PG_INSTALL_HINT)
    VAR.mkdir(parents=True, exist_ok=True)
    home = _postgres_home()
    data, run = home / "pgdata", home / "pgrun"
    run.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(run, "postgres")
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres")
        subprocess.run(
            _as_postgres_user(
                [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    (VAR / "pgdata.location").write_text(str(data))
    if not answers("127.0.0.1", port):
        options = f"-p {port} -h 127.0.0.1 -k {run} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            _as_postgres_user(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(run / "postgres.log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_for("127.0.0.1", port, "private PostgreSQL")
    return f"postgres://postgres@127.0.0.1:{port}/portal"


def stop_private_postgres() -> None:
    location = VAR / "pgdata.location"
    pg_ctl = pg_bin("pg_ctl")
    data = Path(location.read_text().strip()) if location.exists() else VAR / "pgdata"
    if pg_ctl and (data / "postmaster.pid").exists():
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-m", "fast", "stop"]))


def ensure_postgres() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        host, port = _url_host_port(url, 5432)
        if not answers(host, port):
            raise ServiceError(f"DATABASE_URL points at {host}:{port}, which does not answer")
        return url
    if answers("127.0.0.1", 5432):
        # A shared server: one database per checkout, so two clones (a CI run beside a
        # developer's tree) never drop each other's test database.
        return f"postgres://postgres@127.0.0.1:5432/portal_{CHECKOUT}"
    return start_private_postgres()


# -- Redis -----------------------------------------------------------------------------------


def start_private_redis(port: int = PRIVATE_REDIS_PORT, persist: bool = False) -> str:
    server = shutil.which("redis-server")
    if not server:
        raise ServiceError(REDIS_INSTALL_HINT)
    folder = VAR / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    if not answers("127.0.0.1", port):
        args = [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--dir",
            str(folder),
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
        ]
        args += ["--save", "60 1", "--appendonly", "no"] if persist else ["--save", ""]
        subprocess.run(args, check=True)
        wait_for("127.0.0.1", port, "private Redis")
    return f"redis://127.0.0.1:{port}/0"


def stop_private_redis() -> None:
    pidfile = VAR / "redis" / "redis.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass


def ensure_redis(test: bool = False, holder: str = CHECKOUT) -> str:
    """The Redis URL to use. `holder` names who leases a test database: the suite and the date
    rerun of one checkout run at once, each on a database of its own."""
    url = os.environ.get("REDIS_URL")
    if url:
        host, port = _url_host_port(url, 6379)
        if not answers(host, port):
            raise ServiceError(f"REDIS_URL points at {host}:{port}, which does not answer")
        if holder != CHECKOUT:  # a second suite on the same server: the next database
            parts = urlsplit(url)
            number = int((parts.path or "/0").strip("/") or 0)
            return parts._replace(path=f"/{(number + 1) % 16}").geturl()
        return url
    if answers("127.0.0.1", 6379):
        # The machine's shared Redis: the tests use a numbered database leased to this checkout
        # (1-15), away from database 0, so two clones testing at once never share RQ queues.
        if test:
            return f"redis://127.0.0.1:6379/{lease_redis_db(holder=holder)}"
        return "redis://127.0.0.1:6379/0"
    private = start_private_redis()
    return private if holder == CHECKOUT else private.rsplit("/", 1)[0] + "/1"


LEASE_KEY = "portal:test-lease"
LEASE_SECONDS = 3 * 3600


def lease_redis_db(host: str = "127.0.0.1", port: int = 6379, holder: str = CHECKOUT) -> int:
    """A Redis database number leased to `holder` (this checkout, or its date rerun): its own
    if it holds one, else the first free one. The lease expires on its own; `release_redis_db`
    ends it early."""
    import redis

    preferred = 1 + int(hashlib.sha1(holder.encode()).hexdigest()[:8], 16) % 15
    order = [preferred] + [n for n in range(1, 16) if n != preferred]
    for number in order:
        client = redis.Redis(host=host, port=port, db=number, socket_connect_timeout=2)
        try:
            held = client.get(LEASE_KEY)
            if held in (None, holder.encode()):
                if client.set(LEASE_KEY, holder, ex=LEASE_SECONDS, nx=held is None):
                    return number
                if held == holder.encode():
                    client.expire(LEASE_KEY, LEASE_SECONDS)
                    return number
        finally:
            client.close()
    raise ServiceError("every Redis database 1-15 is leased to another test run; try later")


def release_redis_db(url: str) -> None:
    """Give the database back if this checkout holds it (end of a test session)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        held = client.get(LEASE_KEY)
        if held is not None and (held.decode() if isinstance(held, bytes) else held).startswith(
            CHECKOUT
        ):
            client.delete(LEASE_KEY)
    except redis.RedisError:
        pass
    finally:
        client.close()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "test-env"
    try:
        if command == "test-env":
            database = ensure_postgres()
            print(f"export DATABASE_URL='{database}'")
            print(f"export REDIS_URL='{ensure_redis(test=True)}'")
            # The date rerun runs beside the suite, on a database and Redis database of its own.
            print(f"export DATES_DATABASE_URL='{database}_dates'")
            print(f"export DATES_REDIS_URL='{ensure_redis(test=True, holder=CHECKOUT + '-dates')}'")
            # DEBUG off as in production, over plain HTTP, with a throwaway key (portal/env.py).
            from portal.env import suite_environ

            for name, value in suite_environ().items():
                print(f"export {name}='{value}'")
        elif command == "stop":
            stop_private_postgres()
            stop_private_redis()
        else:
            sys.stderr.write(f"unknown command {command!r}; use test-env or stop\n")
            return 2
    except (ServiceError, subprocess.CalledProcessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
