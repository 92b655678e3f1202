"""The test provider as the tests see it: started in a process of its own, steered through its
control file, stopped at the end of the module that started it."""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from accounts.config import parse_role_map
from portal import roles
from tests.factories import PASSWORD
from tests.oidc_provider import control

ROOT = Path(__file__).resolve().parents[2]
# What the portal under test maps (OIDC_ROLE_MAP), as an operator would write it.
ROLE_MAP_TEXT = "idp-ce=CE,idp-devops=DevOps,idp-managers=Managers,idp-leads=CE Leadership"
ROLE_MAP = parse_role_map(ROLE_MAP_TEXT, roles.ALL_ROLES)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Provider:
    def __init__(self, directory: Path, redirect_uris: list[str]) -> None:
        self.directory = directory
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/o"
        self.client_id = "portal-" + secrets.token_hex(4)
        self.client_secret = secrets.token_urlsafe(32)
        self.control_file = directory / "control.json"
        self.log = directory / "provider.log"
        (directory / "client.json").write_text(
            json.dumps(
                {
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "redirect_uris": redirect_uris,
                }
            )
        )
        self.reset()
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.oidc_provider.serve", str(self.port), str(directory)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_up()

    def _wait_until_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        url = self.issuer + "/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the test provider exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the test provider did not answer:\n{self.log.read_text()}")

    def reset(self) -> None:
        control.write({"users": {}, "id_token": "valid"}, self.control_file)

    def set_user(self, username: str, *groups: str, email: str = "", **claims: str) -> None:
        """A person at the provider with these groups; again with other groups: the groups
        changed at the provider (as when someone is taken out of one)."""
        data = control.read(self.control_file)
        data["users"][username] = {
            "password": PASSWORD,
            "groups": list(groups),
            "email": email,
            **claims,
        }
        control.write(data, self.control_file)

    def issue_id_tokens(self, mode: str) -> None:
        assert mode in control.ID_TOKEN_MODES, mode
        data = control.read(self.control_file)
        data["id_token"] = mode
        control.write(data, self.control_file)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def configure_portal(settings, provider: Provider) -> None:
    """The portal under test with SSO on against `provider` (pytest-django's settings)."""
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_CLIENT_ID = provider.client_id
    settings.OIDC_CLIENT_SECRET = provider.client_secret
    settings.OIDC_ROLE_MAP = ROLE_MAP
    provider.reset()


def sign_in_with_client(client, username: str, password: str = PASSWORD, next_url: str = ""):
    """SSO through Django's test client and the real provider: the portal's redirect, the
    provider's sign-in form (with `requests`), then the portal's callback."""
    start = client.get("/oidc/login/", {"next": next_url} if next_url else {})
    assert start.status_code == 302, start
    return client.get(provider_round_trip(start["Location"], username, password))


def provider_round_trip(authorize_url: str, username: str, password: str = PASSWORD) -> str:
    """What the browser does at the provider: sign in there; the answer is the portal callback
    (path and query) that the provider redirects to."""
    import requests

    with requests.Session() as session:
        form = session.get(authorize_url, timeout=10)
        form.raise_for_status()
        answer = session.post(
            form.url,
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": session.cookies["idp_csrftoken"],
            },
            allow_redirects=False,
            timeout=10,
        )
        for _ in range(5):
            location = answer.headers.get("Location", "")
            if "/oidc/callback/" in location:
                return location[location.index("/oidc/callback/") :]
            assert answer.status_code == 302, (answer.status_code, answer.text[:500])
            answer = session.get(
                requests.compat.urljoin(answer.url, location), allow_redirects=False, timeout=10
            )
    raise AssertionError(f"the provider did not send back to the portal: {answer.text[:500]}")
