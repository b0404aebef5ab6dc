from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Lifecycle"

    def ready(self):
        from lifecycle import (
            audit,  # noqa: F401  (connects the login-failure receiver)
            revision,
        )

        revision.watch_lifecycle()
