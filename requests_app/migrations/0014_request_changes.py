"""The delta rows that keep the number of requests (0013) also count the statements that changed
requests: `changes`, one per INSERT, UPDATE or DELETE that touched a row, and never going back
(TRUNCATE keeps the sum and adds one). Its sum is the version of the request data that the SLA
figures are kept under (dashboards/figures.py). PostgreSQL only, as 0013."""

from django.db import migrations

TABLE = "requests_app_requestcount"

INSTALL = f"""
ALTER TABLE {TABLE} ADD COLUMN changes bigint NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION requests_app_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n, changes) SELECT count(*), 1 FROM inserted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION requests_app_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n, changes) SELECT -count(*), 1 FROM deleted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE FUNCTION requests_app_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n, changes) SELECT 0, 1 WHERE EXISTS (SELECT 1 FROM updated);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION requests_app_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (DELETE FROM {TABLE} RETURNING changes)
    INSERT INTO {TABLE} (n, changes) SELECT 0, COALESCE(sum(changes), 0) + 1 FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER requests_app_count_update AFTER UPDATE ON requests_app_request
    REFERENCING NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION requests_app_count_updated();
"""
UNINSTALL = f"""
DROP TRIGGER IF EXISTS requests_app_count_update ON requests_app_request;
DROP FUNCTION IF EXISTS requests_app_count_updated();
CREATE OR REPLACE FUNCTION requests_app_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n) SELECT count(*) FROM inserted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION requests_app_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n) SELECT -count(*) FROM deleted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION requests_app_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE};
    RETURN NULL;
END $$;
ALTER TABLE {TABLE} DROP COLUMN changes;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0013_request_count")]

    operations = [migrations.RunPython(install, uninstall)]
