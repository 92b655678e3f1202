"""A real OpenID Connect provider for the SSO tests: django-oauth-toolkit in a process of its
own (`python -m tests.oidc_provider.serve`), with its own SQLite file and RSA key.

The tests steer it through a JSON control file (`control.py`): its users (password, email,
groups) and how the next ID tokens come out (valid, tampered, expired, for another audience).
"""
