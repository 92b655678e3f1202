from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases and maintenance"

    def ready(self) -> None:
        from releases import hooks

        hooks.connect()
