"""The state of applications across the pipeline, computed in a fixed number of queries.

Whatever the number of applications, environments and modules, building the
grid reads: the applications, their environment tags, every current version,
the members of the tags in use, the open hotfixes and, only when some
environment differs from its tag, the tags holding the contents it runs (so 5
or 6 queries); then compares in memory. What the machines of delivering environments
report adds a fixed number more (`attach_live_states`, lifecycle/delivery/live.py).

Modules are compared by content (tree hash), not by version id: a merge that
brings an environment to exactly a tag's files makes a new version with the
same content, and that environment shows the tag, with no `+` and no arrow.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from django.urls import get_script_prefix, reverse

from lifecycle import grid_cells, hooks
from lifecycle.delivery.live import AgentStatus, LiveCell, live_states
from lifecycle.models import CurrentVersion, EnvironmentTag, TagMember


@dataclass
class Cell:
    environment: object
    tag_number: str | None  # The tag shown: the environment's, or another whose contents it runs
    modules: dict[int, int]  # module id -> version id running here
    tagged: dict[int, int]  # module id -> version id in the tag
    open_hotfix: bool
    contents: dict[int, str]  # module id -> tree hash running here
    tagged_contents: dict[int, str]  # module id -> tree hash in the tag
    tag_id: int | None
    # What the machines report (lifecycle.delivery.live), once attach_live_states has read it.
    live: LiveCell | None = None
    agent: AgentStatus | None = None  # the sign of life of the environment's agents (agent delivery)

    @cached_property
    def changed_modules(self) -> set[int]:
        """Modules whose content differs from the tag's: other files, or present on one side only."""
        if self.tag_number is None:
            return set(self.modules)
        return _differing(self.contents, self.tagged_contents)

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

    # What the grid shows (lifecycle/grid_cells.py writes it, escaped): read once, when the row is
    # written, after attach_live_states and _show_tags_of_equal_contents, hence not cached.

    @property
    def shows_live(self) -> bool:
        return self.live is not None and self.live.delivers and not self.is_empty

    @property
    def css(self) -> str:
        return "cell" + (" hotfix" if self.open_hotfix else "") + (" empty" if self.is_empty else "")

    @property
    def changed_text(self) -> str:
        """'2 modules changed' under a cell with a `+`, else empty."""
        if not self.has_plus:
            return ""
        count = self.differing
        return f"{count} module{'' if count == 1 else 's'} changed"

    def title(self, application_name: str) -> str:
        text = f"{application_name} in {self.environment.name}: {self.label}"
        if self.open_hotfix:
            text += " (open hotfix)"
        if self.shows_live:
            text += f"; {self.live.label}"
        return text


def _differing(left: dict[int, str], right: dict[int, str]) -> set[int]:
    if left == right:  # Most cells run exactly their tag: one comparison in C.
        return set()
    return {m for m in left.keys() | right.keys() if left.get(m) != right.get(m)}


@dataclass
class Gap:
    """Between two neighbouring environments: how many modules run different contents."""

    source: Cell
    target: Cell

    @cached_property
    def differing(self) -> int:
        return len(_differing(self.source.contents, self.target.contents))

    @property
    def differs(self) -> bool:
        return self.differing > 0

    @property
    def deployable(self) -> bool:
        """Whether Tag & Deploy is offered: the contents differ and the source has modules to deploy."""
        return self.differs and bool(self.source.modules)

    def arrow(self, application) -> dict[str, str] | None:
        """The grid's deploy arrow between the two cells (its link and words), or None when not offered."""
        if not self.deployable:
            return None
        source, target = self.source.environment, self.target.environment
        count = self.differing
        differ = f"{count} module{' differs' if count == 1 else 's differ'}"
        return {
            "url": f"{_url_format('lifecycle:deploy', get_script_prefix(), takes_id=False)}"
            f"?source={source.pk}&target={target.pk}&application={application.pk}",
            "title": f"{differ} between {source.name} and {target.name}: deploy",
            "text": f"Deploy {application.name} from {source.name} to {target.name} ({differ})",
        }


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

    @cached_property
    def url(self) -> str:
        return _url_format("lifecycle:application", get_script_prefix()).format(self.application.pk)

    @cached_property
    def cells_html(self):
        """The row's cells and gaps as HTML (lifecycle/grid_cells.py); after attach_live_states."""
        return grid_cells.cells_html(self)


_PLACEHOLDER = 2**31 - 7  # an id no URL pattern refuses, replaced by each row's own


@lru_cache(maxsize=32)
def _url_format(name: str, script_prefix: str, takes_id: bool = True) -> str:
    """The URL named `name`, reversed once per script prefix; with `{}` for the id if it takes one.

    Reversing a URL per row and cell was a third of the grid's time; formatting a string is not.
    """
    if not takes_id:
        return reverse(name)
    return reverse(name, args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


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
    # Versions and contents in separate dicts, shared by every cell that shows the same tag.
    tag_versions: dict[int, dict[int, int]] = defaultdict(dict)
    tag_contents: dict[int, dict[int, str]] = defaultdict(dict)
    for tag_id, module_id, version_id, content in TagMember.objects.filter(
        tag_id__in={tag_id for tag_id, _ in tags.values()}
    ).values_list("tag_id", "module_id", "version_id", "version__tree_hash"):
        tag_versions[tag_id][module_id] = version_id
        tag_contents[tag_id][module_id] = content
    versions: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    contents: dict[tuple[int, int], dict[int, str]] = defaultdict(dict)
    current = CurrentVersion.objects.filter(
        module__application_id__in=application_ids, environment_id__in=environment_ids
    ).values_list("module__application_id", "environment_id", "module_id", "version_id", "version__tree_hash")
    for application_id, environment_id, module_id, version_id, content in current:
        versions[application_id, environment_id][module_id] = version_id
        contents[application_id, environment_id][module_id] = content
    hotfixed = hooks.hotfix_state().open_hotfixes(application_ids, environment_ids)

    rows = []
    for application in applications:
        cells = []
        for environment in environments:
            key = (application.pk, environment.pk)
            tag_id, number = tags.get(key, (None, None))
            cells.append(
                Cell(
                    environment=environment,
                    tag_number=number,
                    modules=versions.get(key, {}),
                    tagged=tag_versions.get(tag_id, {}),
                    open_hotfix=key in hotfixed,
                    contents=contents.get(key, {}),
                    tagged_contents=tag_contents.get(tag_id, {}),
                    tag_id=tag_id,
                )
            )
        gaps = [Gap(cells[i], cells[i + 1]) for i in range(len(cells) - 1)]
        rows.append(Row(application=application, cells=cells, gaps=gaps))
    _show_tags_of_equal_contents(rows)
    return rows


def attach_live_states(rows: list[Row], environments) -> dict[int, AgentStatus]:
    """Give each cell what its machines report; return each agent environment's sign of life.

    A fixed number of queries (none when every environment only records), read for the rows
    shown: after the grid's filters, not before.
    """
    states = live_states([row.application for row in rows], environments)
    for row in rows:
        for cell in row.cells:
            cell.live = states.get((row.application.pk, cell.environment.pk))
            cell.agent = states.agents.get(cell.environment.pk)
    return states.agents


def _show_tags_of_equal_contents(rows: list[Row]) -> None:
    """A cell that differs from its own tag but runs exactly another tag's contents shows that tag.

    One query, only when some cell differs: every member of the tags (of those
    applications) that hold the content of one module of such a cell, one that
    differs if any (a tag with all of a cell's contents holds that one too). When
    several tags match, the highest number is shown.
    """
    differing = [(row.application.pk, cell) for row in rows for cell in row.cells if cell.has_plus]
    if not differing:
        return
    # One content a cell, not every differing one: the 500 of a large application made the list
    # Django prepares and psycopg parses a measurable part of each deployment's validation (issue 11).
    contents = {cell.contents[_one_module(cell)] for _, cell in differing}
    holding = TagMember.objects.filter(
        tag__application_id__in={application_id for application_id, _ in differing},
        version__tree_hash__in=contents,
    ).values("tag_id")
    found: dict[int, dict] = {}  # tag id -> its application, number, order, versions and contents
    for (
        tag_id,
        application_id,
        number,
        major,
        minor,
        patch,
        module_id,
        version_id,
        content,
    ) in TagMember.objects.filter(tag_id__in=holding).values_list(
        "tag_id",
        "tag__application_id",
        "tag__number",
        "tag__major",
        "tag__minor",
        "tag__patch",
        "module_id",
        "version_id",
        "version__tree_hash",
    ):
        tag = found.setdefault(
            tag_id,
            {
                "application": application_id,
                "number": number,
                "order": (major, minor, patch),
                "versions": {},
                "contents": {},
            },
        )
        tag["versions"][module_id] = version_id
        tag["contents"][module_id] = content
    newest_first = sorted(found.items(), key=lambda item: item[1]["order"], reverse=True)
    for application_id, cell in differing:
        for tag_id, tag in newest_first:
            if tag["application"] == application_id and tag["contents"] == cell.contents:
                cell.tag_id, cell.tag_number = tag_id, tag["number"]
                cell.tagged, cell.tagged_contents = tag["versions"], tag["contents"]
                del cell.changed_modules  # It was computed against the environment's own tag.
                break


def _one_module(cell: Cell) -> int:
    """A module the cell runs, one whose content differs from its tag's when there is one."""
    changed = cell.changed_modules & cell.contents.keys()
    return min(changed or cell.contents)
