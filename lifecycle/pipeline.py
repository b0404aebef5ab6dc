"""The state of applications across the pipeline, computed in a fixed number of queries.

Whatever the number of applications, environments and modules, building the
grid reads: the applications, their environment tags, every current version,
the members of the tags in use and the open hotfixes; then compares in memory.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from lifecycle import hooks
from lifecycle.models import CurrentVersion, EnvironmentTag, TagMember


@dataclass
class Cell:
    environment: object
    tag_number: str | None
    modules: dict[int, int]  # module id -> version id running here
    tagged: dict[int, int]  # module id -> version id in the tag
    open_hotfix: bool

    @cached_property
    def changed_modules(self) -> set[int]:
        """Modules that differ from the tag: another version, or present on one side only."""
        if self.tag_number is None:
            return set(self.modules)
        return {
            m for m in self.modules.keys() | self.tagged.keys() if self.modules.get(m) != self.tagged.get(m)
        }

    @property
    def differing(self) -> int:
        return len(self.changed_modules)

    @property
    def has_plus(self) -> bool:
        return bool(self.modules) and (self.tag_number is None or self.differing > 0)

    @property
    def label(self) -> str:
        return (self.tag_number or "–") + ("+" if self.has_plus else "")

    @property
    def is_empty(self) -> bool:
        return not self.modules and self.tag_number is None


@dataclass
class Gap:
    """Between two neighbouring environments: how many modules run different versions."""

    source: Cell
    target: Cell

    @cached_property
    def differing(self) -> int:
        left, right = self.source.modules, self.target.modules
        return sum(1 for m in left.keys() | right.keys() if left.get(m) != right.get(m))

    @property
    def differs(self) -> bool:
        return self.differing > 0


@dataclass
class Row:
    application: object
    cells: list[Cell]
    gaps: list[Gap] = field(default_factory=list)

    @property
    def has_differences(self) -> bool:
        return any(gap.differs for gap in self.gaps) or any(cell.has_plus for cell in self.cells)

    @property
    def has_open_hotfix(self) -> bool:
        return any(cell.open_hotfix for cell in self.cells)

    def columns(self):
        """Cells interleaved with the gaps between them, for templates."""
        for index, cell in enumerate(self.cells):
            yield "cell", cell
            if index < len(self.gaps):
                yield "gap", self.gaps[index]


def build_rows(applications, environments) -> list[Row]:
    applications = list(applications)
    environments = list(environments)
    application_ids = [application.pk for application in applications]
    environment_ids = [environment.pk for environment in environments]

    tags = {
        (application_id, environment_id): (tag_id, number)
        for application_id, environment_id, tag_id, number in EnvironmentTag.objects.filter(
            application_id__in=application_ids, environment_id__in=environment_ids
        ).values_list("application_id", "environment_id", "tag_id", "tag__number")
    }
    running: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for application_id, environment_id, module_id, version_id in CurrentVersion.objects.filter(
        module__application_id__in=application_ids, environment_id__in=environment_ids
    ).values_list("module__application_id", "environment_id", "module_id", "version_id"):
        running[application_id, environment_id][module_id] = version_id
    members: dict[int, dict[int, int]] = defaultdict(dict)
    for tag_id, module_id, version_id in TagMember.objects.filter(
        tag_id__in={tag_id for tag_id, _ in tags.values()}
    ).values_list("tag_id", "module_id", "version_id"):
        members[tag_id][module_id] = version_id
    hotfixed = hooks.hotfix_state().open_hotfixes(application_ids, environment_ids)

    rows = []
    for application in applications:
        cells = []
        for environment in environments:
            tag_id, number = tags.get((application.pk, environment.pk), (None, None))
            cells.append(
                Cell(
                    environment=environment,
                    tag_number=number,
                    modules=running.get((application.pk, environment.pk), {}),
                    tagged=members.get(tag_id, {}),
                    open_hotfix=(application.pk, environment.pk) in hotfixed,
                )
            )
        gaps = [Gap(cells[i], cells[i + 1]) for i in range(len(cells) - 1)]
        rows.append(Row(application=application, cells=cells, gaps=gaps))
    return rows
