"""Starts the test OpenID Connect provider: `python -m tests.oidc_provider.serve PORT DIR`.

DIR holds its SQLite database, its control file (control.py) and `client.json` (client id,
secret and redirect URIs of the one registered application: a confidential client, PKCE
required, consent skipped). An RSA key is made at each start.
"""

import json
import os
import secrets
import sys
from pathlib import Path


def main(port: str, directory: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    state = Path(directory)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.oidc_provider.settings",
        OIDC_PROVIDER_PORT=port,
        OIDC_PROVIDER_DB=str(state / "provider.sqlite3"),
        OIDC_PROVIDER_CONTROL=str(state / "control.json"),
        OIDC_PROVIDER_SECRET_KEY=secrets.token_urlsafe(50),
        OIDC_PROVIDER_RSA_KEY=pem,
    )
    import django

    django.setup()
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    client = json.loads((state / "client.json").read_text())
    Application.objects.create(
        name="portal",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(client["redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    call_command(
        "runserver",
        f"127.0.0.1:{port}",
        use_reloader=False,
        use_threading=True,
        skip_checks=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
