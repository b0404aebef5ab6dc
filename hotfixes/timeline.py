"""A hotfix's timeline: opened, deployed or merged into each environment, solved, and how long each took."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    required = defaultdict(set)  # module id -> hotfix versions
    for module_id, version_id in hotfix.changes.values_list("module_id", "version_id"):
        required[module_id].add(version_id)
    events = [Event(hotfix.opened_at, f"Opened in {hotfix.environment.name}", timedelta(0))]
    links = effective_links(list(required))
    names = {e.pk: e.name for e in environments}
    running = defaultdict(dict)  # environment id -> module id -> version id
    reached = {hotfix.environment_id}
    for environment_id, module_id, version_id, kind, at in (
        ModuleChange.objects.filter(module_id__in=required, environment_id__in=names)
        .order_by("at", "id")
        .values_list("environment_id", "module_id", "version_id", "kind", "at")
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
    if hotfix.solved_at:
        what = "Marked solved" + (" while incomplete" if hotfix.solved_incomplete else "")
        if hotfix.solved_by:
            what += f" by {hotfix.solved_by.get_username()}"
        events.append(Event(hotfix.solved_at, what, hotfix.solved_at - hotfix.opened_at))
    return events
