"""The sandbox: a local stand-in for the part of the Compute Engine API the portal uses.

`server` serves the REST API that google-cloud-compute speaks, `compute` is the portal's thin
client on top of google-cloud-compute (for the sandbox and the real API alike), and `cli` is what
the sandbox Terraform module's local-exec provisioners run.
"""
