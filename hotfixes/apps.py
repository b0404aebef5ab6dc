from django.apps import AppConfig


class HotfixesConfig(AppConfig):
    name = "hotfixes"
    verbose_name = "Hotfixes"

    def ready(self):
        # Plug into lifecycle, which never imports this app (see lifecycle.hooks).
        from hotfixes.state import OpenHotfixState
        from hotfixes.tracking import on_version_published
        from hotfixes.views import application_section
        from lifecycle import hooks

        hooks.version_published.connect(on_version_published, dispatch_uid="hotfixes-open-on-publish")
        hooks.register_hotfix_state(OpenHotfixState())
        hooks.register_application_section(application_section)
        # Hotfixes show on the grid and the application page: their saves move the pipeline revision.
        from hotfixes.models import Hotfix, HotfixChange, Merge
        from lifecycle import revision

        revision.watch(Hotfix, HotfixChange, Merge)
