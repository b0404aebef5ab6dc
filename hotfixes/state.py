"""The open hotfixes as plain data for lifecycle: grid, validation, rollback and API (see lifecycle.hooks)."""

from hotfixes.models import Hotfix, HotfixChange
from lifecycle.hooks import HotfixState


class OpenHotfixState(HotfixState):
    def open_hotfixes(self, application_ids, environment_ids) -> dict:
        return {
            (application_id, environment_id): pk
            for pk, application_id, environment_id in Hotfix.objects.open()
            .filter(application_id__in=application_ids, environment_id__in=environment_ids)
            .values_list("pk", "application_id", "environment_id")
        }

    def hotfixed_modules(self, application_ids, environment_ids) -> set:
        return set(
            HotfixChange.objects.filter(
                hotfix__application_id__in=application_ids,
                hotfix__solved_at__isnull=True,
                hotfix__environment_id__in=environment_ids,
            ).values_list("hotfix__environment_id", "module_id")
        )
