"""The provider's users and ID tokens, as the control file (control.py) says."""

import base64
import json
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from oauth2_provider.oauth2_validators import OAuth2Validator

from tests.oidc_provider import control


class ControlFileBackend(ModelBackend):
    """Signs in the users of the control file with their password there (made in the
    provider's database at their first sign-in, as its grants need a row)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        entry = control.user(username or "")
        if entry is None or password != entry["password"]:
            return None
        user, _ = User.objects.get_or_create(username=username)
        return user


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Validator(OAuth2Validator):
    # Every claim of get_additional_claims goes out, whatever the scopes (groups has none).
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        entry = control.user(request.user.username) or {}
        claims = {
            "sub": entry.get("sub", f"sub-{request.user.username}"),
            "preferred_username": entry.get("preferred_username", request.user.username),
            "groups": entry.get("groups", []),
        }
        if entry.get("email"):
            claims["email"] = entry["email"]
        return claims

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        if control.read().get("id_token") == "expired":
            claims["exp"] = int(time.time()) - 3600
            expiration_time -= timedelta(seconds=36000 + 3600)
        return claims, expiration_time

    def finalize_id_token(self, id_token: dict[str, Any], token, token_handler, request) -> str:
        mode = control.read().get("id_token", "valid")
        if mode == "expired":
            id_token["iat"] = int(time.time()) - 7200
        if mode == "wrong_audience":
            id_token["aud"] = "another-application"
        signed = super().finalize_id_token(id_token, token, token_handler, request)
        if mode != "tampered":
            return signed
        # The payload changed after signing (a role the person does not have), the signature
        # kept: what someone editing a token in transit would send.
        header, payload, signature = signed.split(".")
        claims = json.loads(_unb64(payload))
        claims["groups"] = [*claims.get("groups", []), "idp-devops"]
        return ".".join([header, _b64(json.dumps(claims).encode()), signature])
