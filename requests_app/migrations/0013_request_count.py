"""The number of requests kept by statement triggers (requests_app/counting.py reads it),
PostgreSQL only: SQLite counts."""

from django.db import migrations

TABLE = "requests_app_requestcount"

# The table, the trigger functions and the triggers.
INSTALL = f"""
CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, n bigint NOT NULL);
INSERT INTO {TABLE} (n) SELECT count(*) FROM requests_app_request;
CREATE FUNCTION requests_app_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n) SELECT count(*) FROM inserted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE FUNCTION requests_app_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (n) SELECT -count(*) FROM deleted HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE FUNCTION requests_app_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE};
    RETURN NULL;
END $$;
CREATE TRIGGER requests_app_count_insert AFTER INSERT ON requests_app_request
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION requests_app_count_inserted();
CREATE TRIGGER requests_app_count_delete AFTER DELETE ON requests_app_request
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION requests_app_count_deleted();
CREATE TRIGGER requests_app_count_truncate AFTER TRUNCATE ON requests_app_request
    FOR EACH STATEMENT EXECUTE FUNCTION requests_app_count_truncated();
"""
UNINSTALL = f"""
DROP TRIGGER IF EXISTS requests_app_count_insert ON requests_app_request;
DROP TRIGGER IF EXISTS requests_app_count_delete ON requests_app_request;
DROP TRIGGER IF EXISTS requests_app_count_truncate ON requests_app_request;
DROP FUNCTION IF EXISTS requests_app_count_inserted();
DROP FUNCTION IF EXISTS requests_app_count_deleted();
DROP FUNCTION IF EXISTS requests_app_count_truncated();
DROP TABLE IF EXISTS {TABLE};
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0012_queue_order_index")]

    operations = [migrations.RunPython(install, uninstall)]
