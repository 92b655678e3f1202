from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in (single sign-on, the password switches) and the personal API tokens."""

    name = "accounts"
    verbose_name = "Sign-in and API tokens"
