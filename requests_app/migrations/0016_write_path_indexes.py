"""Fewer indexes on the request table's write path.

Every UPDATE of a request that changes an indexed column (each transition, each recompute of the
SLA timers after a closure or a policy change) is not a HOT update: PostgreSQL adds an entry to
every index whose condition the row meets. At 30 indexes that was most of the cost of
recomputing 100,000 open timers. Dropped or narrowed, none read by a query of the portal:

- `state`'s field index and its LIKE index: `request_state` is the same index;
- `instance`'s field index: `request_instance_state` leads with it;
- `instance_slug`'s LIKE index (the portal compares slugs with = or UPPER(...) LIKE, which
  `request_instance_slug_upper` and the new plain index serve);
- `external_id`: unique, and indexed in upper case, only where it is set (the requests filed in
  the portal have none), and without a LIKE index;
- `granted_by`'s field index: only the access grants have a grantor.
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0008_instance_category"),
        ("requests_app", "0015_resolution_started_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="request",
            name="request_external_id_upper",
        ),
        migrations.AlterField(
            model_name="request",
            name="external_id",
            field=models.CharField(blank=True, max_length=100, null=True),
        ),
        migrations.AlterField(
            model_name="request",
            name="granted_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="access_granted",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="request",
            name="instance",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="requests",
                to="provisioning.instance",
            ),
        ),
        # Django's AlterField would drop one_open_provisioning_request_per_instance with the
        # field's own indexes (it takes the partial unique index for one of them) and not make
        # it again: drop the field's two indexes by name instead.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="request",
                    name="instance_slug",
                    field=models.CharField(max_length=30),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "requests_app_request_instance_slug_0b36b92c";'
                    'DROP INDEX IF EXISTS "requests_app_request_instance_slug_0b36b92c_like";',
                    'CREATE INDEX "requests_app_request_instance_slug_0b36b92c" '
                    'ON "requests_app_request" ("instance_slug");',
                ),
            ],
        ),
        migrations.AlterField(
            model_name="request",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending_approval", "Pending approval"),
                    ("tech_review", "Tech review"),
                    ("queued", "Queued"),
                    ("in_progress", "In progress"),
                    ("waiting_on_customer", "Waiting on customer"),
                    ("done", "Done"),
                    ("rejected", "Rejected"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending_approval",
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="request",
            index=models.Index(
                django.db.models.functions.text.Upper("external_id"),
                condition=models.Q(("external_id__isnull", False)),
                name="request_external_id_upper",
            ),
        ),
        migrations.AddIndex(
            model_name="request",
            index=models.Index(fields=["instance_slug"], name="request_instance_slug"),
        ),
        migrations.AddIndex(
            model_name="request",
            index=models.Index(
                condition=models.Q(("granted_by__isnull", False)),
                fields=["granted_by"],
                name="request_granted_by",
            ),
        ),
        migrations.AddConstraint(
            model_name="request",
            constraint=models.UniqueConstraint(
                condition=models.Q(("external_id__isnull", False)),
                fields=("external_id",),
                name="request_external_id_unique",
            ),
        ),
    ]
