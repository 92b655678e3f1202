"""What Terraform is given of the worker's environment: an allowlist, never the portal's
secrets; and a state-backend connection string that survives any password."""

from unittest import mock

from django.db import connection
from psycopg.conninfo import conninfo_to_dict

from provisioning import workspace
from tests.factories import make_instance

SECRETS = {
    "SECRET_KEY": "s" * 60,
    "DATABASE_URL": "postgres://portal:hunter2@db/portal",
    "EMAIL_URL": "smtp://mailer:pw@smtp.example.com:587",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
    "SLACK_BOT_TOKEN": "xoxb-secret",
    "SLACK_SIGNING_SECRET": "signing-secret",
    "REDIS_URL": "redis://:pw@redis:6379/0",
}


def test_terraform_never_sees_the_portals_secrets(db, monkeypatch, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    for name, value in {**SECRETS, "HTTPS_PROXY": "http://proxy:3128", "TF_LOG": "INFO"}.items():
        monkeypatch.setenv(name, value)
    instance = make_instance("envy")
    _, env = workspace.render(instance, workspace.base_variables(instance))
    assert not set(SECRETS) & set(env)
    assert not any(value in env.values() for value in SECRETS.values())
    assert env["HTTPS_PROXY"] == "http://proxy:3128" and env["TF_LOG"] == "INFO"
    assert env["PATH"] and env["TF_IN_AUTOMATION"] == "1"


def test_the_state_connection_string_keeps_a_password_with_spaces_and_quotes(db):
    password = "p@ss word' with \\ backslash"
    with mock.patch.dict(connection.settings_dict, {"PASSWORD": password, "HOST": "db.local"}):
        parsed = conninfo_to_dict(workspace.postgres_conn_str())
    assert parsed["password"] == password and parsed["host"] == "db.local"
