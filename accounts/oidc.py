"""Single sign-on with OpenID Connect, through Authlib's Django client.

1. `start` sends the browser to the provider's authorization endpoint (found by discovery at
   `<OIDC_ISSUER>/.well-known/openid-configuration`): authorization code flow with PKCE (S256);
   Authlib keeps the state, the nonce and the code verifier in the session.
2. `verify` takes the provider's answer at /oidc/callback/: Authlib checks the state, trades the
   code (with the verifier) for tokens and verifies the ID token: its signature against the
   provider's JWKS, the issuer, the audience (our client id), the nonce of this session and the
   expiry. No JWT is read here by hand.
3. `accounts.sso_accounts` turns the verified claims into a portal user and their roles.

Any refusal is a `SignInFailed` with words for the person and a reason for the log; neither
holds a code, a token or the client secret.
"""

import logging
from functools import lru_cache
from typing import Any

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoIntegration, DjangoOAuth2App
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
# Seconds to wait for the provider (discovery, JWKS, the token endpoint).
PROVIDER_TIMEOUT = 10
# Clock difference tolerated between the provider and the portal when checking expiry.
LEEWAY_SECONDS = 60
AGAIN = "Sign in again; if it keeps failing, tell the portal's administrators."


class SignInFailed(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(reason)
        self.message = message  # for the person, on the sign-in page
        self.reason = reason  # for the log


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID and settings.OIDC_CLIENT_SECRET)


def issuer() -> str:
    return str(settings.OIDC_ISSUER).rstrip("/")


@lru_cache(maxsize=4)
def _client(issuer: str, client_id: str, client_secret: str, scopes: str) -> DjangoOAuth2App:
    """One client per configuration: it keeps the discovery document and the JWKS it read (the
    JWKS is read again when a token names a key it does not know, as after a key rotation)."""
    return DjangoOAuth2App(
        DjangoIntegration("sso"),
        name="sso",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=issuer + DISCOVERY_PATH,
        client_kwargs={
            "scope": scopes,
            "code_challenge_method": "S256",
            "default_timeout": PROVIDER_TIMEOUT,
        },
    )


def client() -> DjangoOAuth2App:
    return _client(
        issuer(),
        str(settings.OIDC_CLIENT_ID),
        str(settings.OIDC_CLIENT_SECRET),
        settings.OIDC_SCOPES,
    )


def _metadata(app: DjangoOAuth2App) -> dict[str, Any]:
    """The discovery document, which must be the configured issuer's own (OpenID Connect
    Discovery 4.3: its `issuer` is the URL it was found under)."""
    try:
        metadata: dict[str, Any] = app.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed(
            "The identity provider could not be reached, so single sign-on is not available "
            "right now. " + AGAIN,
            f"discovery at {issuer()}{DISCOVERY_PATH} failed: {type(exc).__name__}: {exc}",
        ) from None
    if str(metadata.get("issuer", "")).rstrip("/") != issuer():
        raise SignInFailed(
            "The identity provider is not set up as the portal expects. " + AGAIN,
            f"the discovery document names issuer {metadata.get('issuer')!r}, not {issuer()!r}",
        )
    return metadata


def start(request: HttpRequest, redirect_uri: str) -> HttpResponse:
    """The redirect to the provider's sign-in page."""
    app = client()
    _metadata(app)
    try:
        response: HttpResponse = app.authorize_redirect(request, redirect_uri)
    except (requests.RequestException, RuntimeError) as exc:
        raise SignInFailed(
            "The identity provider could not be reached. " + AGAIN,
            f"authorization request failed: {type(exc).__name__}: {exc}",
        ) from None
    return response


# What went wrong with the ID token, in words, per claim that failed its check.
CLAIM_PROBLEMS = {
    "aud": "it was issued for another application (audience)",
    "azp": "it was issued for another application (authorized party)",
    "iss": "it was issued by another provider (issuer)",
    "nonce": "it does not belong to this sign-in (nonce)",
    "exp": "it has expired",
    "iat": "its issue time is not valid",
    "nbf": "it is not valid yet",
}


def verify(request: HttpRequest) -> dict[str, Any]:
    """The verified claims of the ID token that the provider's answer to `request` brings."""
    app = client()
    metadata = _metadata(app)
    claims_options = {
        "iss": {"essential": True, "values": [metadata["issuer"]]},
        "aud": {"essential": True, "values": [app.client_id]},
    }
    refused = "The identity provider's answer was refused: "
    try:
        token = app.authorize_access_token(
            request, claims_options=claims_options, leeway=LEEWAY_SECONDS
        )
    except MismatchingStateError:
        raise SignInFailed(
            "The sign-in could not be matched to this browser: it was started in another tab "
            "or browser, took too long, or was already used. Sign in again.",
            "state mismatch (no sign-in of this session has that state)",
        ) from None
    except OAuthError as exc:
        code = str(exc.error or "error")[:64]
        raise SignInFailed(
            f"The identity provider refused the sign-in ({code}). " + AGAIN,
            f"provider error {code}: {str(exc.description or '')[:200]}",
        ) from None
    except ExpiredTokenError:
        raise SignInFailed(
            refused + "the identity token has expired. " + AGAIN, "ID token expired"
        ) from None
    except (InvalidClaimError, MissingClaimError) as exc:
        problem = CLAIM_PROBLEMS.get(exc.claim, f"its claim {exc.claim!r} is not valid")
        raise SignInFailed(
            refused + f"the identity token is not valid: {problem}. " + AGAIN,
            f"ID token claim {exc.claim!r} refused: {exc.description}",
        ) from None
    except BadSignatureError:
        raise SignInFailed(
            refused + "the identity token's signature does not match the provider's keys "
            "(it may have been tampered with). " + AGAIN,
            "ID token signature invalid",
        ) from None
    except JoseError as exc:
        raise SignInFailed(
            refused + "the identity token could not be read. " + AGAIN,
            f"ID token unreadable: {type(exc).__name__}",
        ) from None
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        raise SignInFailed(
            "The identity provider could not be reached or gave an answer the portal cannot "
            "use. " + AGAIN,
            f"token exchange failed: {type(exc).__name__}",
        ) from None
    claims = token.get("userinfo")
    if not claims:
        raise SignInFailed(
            refused + "it brought no identity token. " + AGAIN, "no id_token in the answer"
        )
    return dict(claims)
