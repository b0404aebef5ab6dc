"""Which module versions a user may read: the one rule behind every page, fragment, download, diff and API.

A user sees a module version only if it was published in, or has ever been current in, an
environment they can view. Every publish, deploy and merge writes a ModuleChange row for the
environment it changes, so "ever current" is read from those rows (and from CurrentVersion as
well, so a current version is never hidden whatever wrote it). Superusers see every version.

A version the user may not see answers 404, exactly like one that does not exist, so that its
existence is not confirmed. Version numbers are counted per module, so a gap in the list is all
that shows: never a version's files, comment, author or where it was published.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from lifecycle import access
from lifecycle.history import effective_links
from lifecycle.history_graph import merge_bases
from lifecycle.models import (
    AccessLevel,
    ApplicationTag,
    CurrentVersion,
    ModuleChange,
    ModuleVersion,
    TagMember,
)


def visible_versions(user, module) -> QuerySet[ModuleVersion]:
    """The versions of `module` the user may read, as one query whatever their number."""
    return _visible(user, module.versions.all(), module=module)


def _visible(user, versions, **modules) -> QuerySet[ModuleVersion]:
    """The `versions` the user may read; `modules` (module=… or module__application=…) narrows the lookup."""
    if user.is_active and user.is_superuser:
        return versions
    environment_ids = list(access.levels_for(user))
    if not environment_ids:
        return versions.none()
    ever_current = ModuleChange.objects.filter(environment_id__in=environment_ids, **modules)
    current = CurrentVersion.objects.filter(environment_id__in=environment_ids, **modules)
    return versions.filter(
        Q(published_in_id__in=environment_ids)
        | Q(pk__in=ever_current.values("version_id"))
        | Q(pk__in=current.values("version_id"))
    )


def every_visible_version(user) -> QuerySet[ModuleVersion]:
    """Every module's versions the user may read (the admin's list of versions)."""
    return _visible(user, ModuleVersion.objects.all())


def visible_tags(user, application=None) -> QuerySet[ApplicationTag]:
    """The tags (of `application`, or all) the user may see: those whose files the user may read.

    A tag is its versions: one made where the user has no access (a Pre-Production hotfix's
    0.3.1) would show its number, author and notes, and offer to roll back to it. Compared by
    content, as the grid labels environments: once a merge brought Quality Assurance exactly
    0.3.1's files, its viewers see 0.3.1 there and here alike.
    """
    scope = {} if application is None else {"module__application": application}
    tags = ApplicationTag.objects.all() if application is None else application.tags.all()
    if user.is_active and user.is_superuser:
        return tags
    readable = _visible(user, ModuleVersion.objects.filter(**scope), **scope).filter(
        module_id=OuterRef("module_id"), tree_hash=OuterRef("version__tree_hash")
    )
    hiding = TagMember.objects.filter(tag__in=tags).exclude(Exists(readable))
    return tags.exclude(pk__in=hiding.values("tag_id"))


def visible_version(user, module, number) -> ModuleVersion:
    """Version `number` of `module`, or Http404 when there is none or the user may not see it."""
    version = visible_versions(user, module).filter(number=number).first()
    if version is None:
        raise Http404(f"{module.name} has no version {number} that you can see.")
    return version


def comparison_base(user, module, source, target, number) -> ModuleVersion:
    """Version `number` as the base of a diff comparing `source` and `target`, or Http404.

    Comparing two environments shows each side's changes since their merge base, so the merge
    base of the versions they run is shown as a base to whoever may view both environments, even
    when the user may not see it by the rule above: after a Production hotfix was merged into
    both, the hotfix's own version is the base of Development and Quality Assurance. It is shown
    only as the base of such a diff, never as a version on its own (page, download, version diff).
    """
    if not (access.can(user, source, AccessLevel.VIEW) and access.can(user, target, AccessLevel.VIEW)):
        raise Http404("No such comparison.")
    version = visible_versions(user, module).filter(number=number).first()
    if version is None:
        version = module.versions.filter(number=number, pk__in=_merge_bases(module, source, target)).first()
    if version is None:
        raise Http404(f"{module.name} has no version {number} that you can see.")
    return version


def _merge_bases(module, source, target) -> set[int]:
    """The ids of the nearest common ancestors of the versions `source` and `target` run now."""
    running = dict(
        CurrentVersion.objects.filter(module=module, environment__in=[source, target]).values_list(
            "environment_id", "version_id"
        )
    )
    if source.pk not in running or target.pk not in running:
        return set()
    return merge_bases(running[source.pk], running[target.pk], effective_links([module.pk]))
