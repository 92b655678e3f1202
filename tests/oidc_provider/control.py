"""The control file that the tests write and the provider reads at every sign-in and token.

{
  "users": {"alice": {"password": "...", "email": "...", "groups": ["idp-devops"],
                      "preferred_username": "alice", "sub": "..."}},
  "id_token": "valid" | "tampered" | "expired" | "wrong_audience"
}
"""

import json
import os
from pathlib import Path
from typing import Any

ID_TOKEN_MODES = ("valid", "tampered", "expired", "wrong_audience")


def path() -> Path:
    return Path(os.environ["OIDC_PROVIDER_CONTROL"])


def read(file: Path | None = None) -> dict[str, Any]:
    try:
        return json.loads((file or path()).read_text())
    except FileNotFoundError:
        return {"users": {}, "id_token": "valid"}


def write(data: dict[str, Any], file: Path | None = None) -> None:
    """Atomically: the provider may read it at any moment."""
    target = file or path()
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(target)


def user(username: str, file: Path | None = None) -> dict[str, Any] | None:
    return read(file)["users"].get(username)
