"""Fleet adoption: instances that exist before the portal, read from the Terraform folders of
the older set-up (`python manage.py import_fleet DIR`, docs/fleet-import.md).

- `hcl`: the values python-hcl2 gives, as Terraform would read them (`var.x` resolved).
- `folder`: one folder -> what it gives the gcp module, checked against the module's rules.
- `importer`: folders -> instances created, updated, unchanged or skipped (one transaction each).
- `imports`: the first run of an adopted instance imports its resources into the portal's state.
"""
