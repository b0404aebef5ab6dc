"""A hotfix's timeline: opened, deployed or merged into each environment, solved, and how long each took."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from hotfixes.propagation import all_links
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors
from lifecycle.models import ModuleChange

VERBS = {
    ModuleChange.Kind.DEPLOY: "Deployed to",
    ModuleChange.Kind.MERGE: "Merged into",
    ModuleChange.Kind.PUBLISH: "Published in",
}


@dataclass
class Event:
    at: datetime
    what: str
    after: timedelta
    partial: bool = False  # a merge that left some of the hotfix's changes out

    @property
    def after_text(self) -> str:
        seconds = int(self.after.total_seconds())
        if seconds < 60:
            return f"{seconds} s"
        if seconds < 3600:
            return f"{seconds // 60} min"
        if seconds < 86400:
            return f"{seconds // 3600} h {seconds % 3600 // 60} min"
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def timeline(hotfix, environments) -> list[Event]:
    """When the hotfix was opened, reached each environment (or was merged there partly), and was solved."""
    required = defaultdict(set)  # module id -> hotfix versions
    for module_id, version_id in hotfix.changes.values_list("module_id", "version_id"):
        required[module_id].add(version_id)
    events = [Event(hotfix.opened_at, f"Opened in {hotfix.environment.name}", timedelta(0))]
    links = effective_links(list(required))
    partial_links = None  # read only when a partial merge is met
    names = {e.pk: e.name for e in environments}
    running = defaultdict(dict)  # environment id -> module id -> version id
    reached = {hotfix.environment_id}
    for environment_id, module_id, version_id, kind, complete, at in (
        ModuleChange.objects.filter(module_id__in=required, environment_id__in=names)
        .order_by("at", "id")
        .values_list("environment_id", "module_id", "version_id", "kind", "version__merged_all", "at")
    ):
        running[environment_id][module_id] = version_id
        if at < hotfix.opened_at or environment_id in reached:
            continue
        here = running[environment_id]
        if all(
            module_id in here and versions <= ancestors(here[module_id], links)
            for module_id, versions in required.items()
        ):
            reached.add(environment_id)
            events.append(Event(at, f"{VERBS[kind]} {names[environment_id]}", at - hotfix.opened_at))
        elif kind == ModuleChange.Kind.MERGE and not complete:
            partial_links = partial_links or all_links(list(required), links)
            if required[module_id] & ancestors(version_id, partial_links):
                what = f"Partly merged into {names[environment_id]}: some changes were left out"
                events.append(Event(at, what, at - hotfix.opened_at, partial=True))
    if hotfix.solved_at:
        what = "Marked solved" + (" while incomplete" if hotfix.solved_incomplete else "")
        if hotfix.solved_by:
            what += f" by {hotfix.solved_by.get_username()}"
        events.append(Event(hotfix.solved_at, what, hotfix.solved_at - hotfix.opened_at))
    return events
