"""No index on the state alone: request_queue_order leads with it and serves the counts of the
open states, and every write of a request paid for the second copy."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0017_next_alert_indexes")]

    operations = [migrations.RemoveIndex(model_name="request", name="request_state")]
