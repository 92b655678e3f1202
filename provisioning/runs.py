"""What the request workflow may ask of provisioning runs.

The run model and engine arrive with the provisioning issue; until then no run can be applying.
"""


def instance_has_applying_run(instance_id, request_id):
    return False
