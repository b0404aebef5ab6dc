"""Whether each environment contains a hotfix's changes, computed from the history graph.

An environment contains a hotfix version when the module version running there
is that version or descends from it through parents and complete merges. A
deployment of a tag that holds the hotfix versions counts (it runs them); a
merge that left some of the hotfix's changes out does not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from hotfixes.models import Hotfix, HotfixChange
from lifecycle import audit
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors
from lifecycle.models import AuditEvent, CurrentVersion


class SolveError(ValueError):
    """Marking solved was refused; the message says why."""


class NeedsConfirmation(SolveError):
    def __init__(self, lacking):
        self.lacking = lacking
        names = ", ".join(status.environment.name for status in lacking)
        super().__init__(
            f"{names} do{'es' if len(lacking) == 1 else ''} not contain every change of this hotfix yet."
        )


@dataclass
class EnvironmentStatus:
    environment: object
    contained: list[str] = field(default_factory=list)  # module names whose hotfix change is there
    missing: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.missing:
            return "all"
        return "some" if self.contained else "none"

    @property
    def label(self) -> str:
        return {"all": "contains every change", "some": "contains some changes", "none": "contains none"}[
            self.state
        ]


def statuses(hotfixes, environments) -> dict[int, list[EnvironmentStatus]]:
    """hotfix id -> the status of each other environment running the application. Fixed queries."""
    hotfixes = list(hotfixes)
    if not hotfixes:
        return {}
    changes = defaultdict(dict)  # hotfix id -> module id -> (name, [versions])
    for hotfix_id, module_id, name, version_id in HotfixChange.objects.filter(
        hotfix__in=hotfixes
    ).values_list("hotfix_id", "module_id", "module__name", "version_id"):
        changes[hotfix_id].setdefault(module_id, (name, []))[1].append(version_id)
    module_ids = {module_id for per_module in changes.values() for module_id in per_module}
    links = effective_links(module_ids)
    application_ids = {hotfix.application_id for hotfix in hotfixes}
    running = defaultdict(dict)  # (environment id, application id) -> module id -> version id
    for environment_id, application_id, module_id, version_id in CurrentVersion.objects.filter(
        module__application_id__in=application_ids, environment__in=environments
    ).values_list("environment_id", "module__application_id", "module_id", "version_id"):
        running[environment_id, application_id][module_id] = version_id

    result = {}
    for hotfix in hotfixes:
        rows = []
        for environment in environments:
            if environment.pk == hotfix.environment_id:
                continue
            here = running.get((environment.pk, hotfix.application_id))
            if not here:
                continue  # The application does not run there.
            status = EnvironmentStatus(environment)
            for module_id, (name, versions) in sorted(
                changes[hotfix.pk].items(), key=lambda item: item[1][0]
            ):
                current = here.get(module_id)
                history = ancestors(current, links) if current else set()
                (status.contained if all(v in history for v in versions) else status.missing).append(name)
            rows.append(status)
        result[hotfix.pk] = rows
    return result


def mark_solved(hotfix_id, environments, *, user, confirm_incomplete=False, note="") -> Hotfix:
    """Mark the hotfix solved. Asks for confirmation (NeedsConfirmation) while an environment lacks it.

    Two people at once: the row lock lets one win; the other is told who solved it.
    """
    with transaction.atomic():
        hotfix = (
            Hotfix.objects.select_for_update(of=("self",))
            .select_related("solved_by", "environment", "application")
            .get(pk=hotfix_id)
        )
        if not hotfix.is_open:
            # Read who solved it after the lock: a join taken with the lock still shows the old row.
            who = (
                get_user_model()
                .objects.filter(pk=hotfix.solved_by_id)
                .values_list("username", flat=True)
                .first()
                or "someone"
            )
            raise SolveError(
                f"This hotfix was already marked solved by {who} "
                f"at {timezone.localtime(hotfix.solved_at):%H:%M}."
            )
        lacking = [status for status in statuses([hotfix], environments)[hotfix.pk] if status.state != "all"]
        if lacking and not confirm_incomplete:
            raise NeedsConfirmation(lacking)
        hotfix.solved_at = timezone.now()
        hotfix.solved_by = user
        hotfix.solved_incomplete = bool(lacking)
        lacked = "; ".join(f"{s.environment.name} lacked {', '.join(s.missing)}" for s in lacking)
        # The record of what was lacking is kept whatever the user writes beside it.
        hotfix.solved_note = " — ".join(
            part for part in (note.strip(), f"Solved while {lacked}" if lacking else "") if part
        )
        hotfix.save(update_fields=["solved_at", "solved_by", "solved_incomplete", "solved_note"])
        audit.record(
            AuditEvent.Action.HOTFIX_SOLVED,
            user=user,
            environment=hotfix.environment,
            application=hotfix.application,
            summary=f"Hotfix of {hotfix.application.name} in {hotfix.environment.name} marked solved"
            + (" while incomplete" if lacking else ""),
            before={"open": True},
            after={"open": False, "incomplete": bool(lacking), "note": hotfix.solved_note},
        )
    return hotfix
