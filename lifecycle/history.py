"""The history graph of module versions as stored: the links `history_graph` walks.

One definition for every reader (deploy findings, rollback, compare, merge,
hotfix status): a partial merge links only to its parent, so the changes it
left out are not counted as contained.
"""

from __future__ import annotations

from lifecycle.models import ModuleVersion


def effective_links(module_ids) -> dict[int, tuple[int | None, int | None]]:
    """version id -> (parent id, merged-from id) for these modules' versions; one query."""
    return {
        pk: (parent, merged_from if merged_all else None)
        for pk, parent, merged_from, merged_all in ModuleVersion.objects.filter(
            module_id__in=module_ids
        ).values_list("pk", "parent_id", "merged_from_id", "merged_all")
    }
