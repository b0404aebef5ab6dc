"""Compare an application between two environments (page or dialog), one file's diff, two versions' diff."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from hotfixes.comparing import compare_application, file_diff, load_inline_diffs
from hotfixes.engine.linediff import diff_lines
from hotfixes.engine.treediff import diff_trees
from lifecycle import access, visibility
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import AccessLevel, Application, Blob, Environment, Module
from lifecycle.request_values import parse_id


def _id(data, name) -> int:
    value = parse_id(data.get(name, ""))
    if value is None:
        raise Http404(f"Choose the {name} to compare.")
    return value


def _comparison_for(request):
    """The application and the two environments of a compare URL, or 404/403: the one access check here."""
    application = get_object_or_404(Application, pk=_id(request.GET, "application"))
    source = get_object_or_404(Environment, pk=_id(request.GET, "source"))
    target = get_object_or_404(Environment, pk=_id(request.GET, "target"))
    access.require(request.user, source, AccessLevel.VIEW)
    access.require(request.user, target, AccessLevel.VIEW)
    return application, source, target


@login_required
@require_GET
def compare(request: HtmxHttpRequest):
    application, source, target = _comparison_for(request)
    comparison = compare_application(application, source, target)
    load_inline_diffs(comparison)
    context = {
        "application": application,
        "source": source,
        "target": target,
        "comparison": comparison,
        "environments": access.visible_environments(request.user),
        # Only the backward merge is offered: from the later environment into the earlier.
        "can_merge_backward": access.can(request.user, comparison.earlier, AccessLevel.PUBLISH),
    }
    return render(request, page_or_partial(request, "hotfixes/compare.html", "comparison"), context)


@login_required
@require_GET
def compare_file(request: HtmxHttpRequest):
    """One file's changes on one side since the merge base, for a diff too large to show inline."""
    application, source, target = _comparison_for(request)
    module = get_object_or_404(Module, pk=_id(request.GET, "module"), application=application)
    version = visibility.visible_version(request.user, module, _id(request.GET, "version"))
    # No base: the two sides share no history, and the file is measured from nothing. A base the
    # user may not see is shown only when it is the merge base of the two environments compared.
    base = (
        visibility.comparison_base(request.user, module, source, target, _id(request.GET, "base"))
        if request.GET.get("base")
        else None
    )
    path = request.GET.get("path", "")
    changed = file_diff(module, base, version, path) if path else None
    if changed is None:
        raise Http404(f"{module.name} v{version.number} has no file {path}.")
    context = {
        "application": application,
        "source": source,
        "target": target,
        "module": module,
        "base": base,
        "version": version,
        "file": changed,
    }
    return render(request, page_or_partial(request, "hotfixes/compare_file.html", "file-diff"), context)


# A plain two-version diff, linked from the "would undo changes" finding.


@login_required
@require_GET
def version_diff(request: HtmxHttpRequest, module_id: int, old: int, new: int):
    module = get_object_or_404(Module.objects.select_related("application"), pk=module_id)
    if not access.visible_environments(request.user):
        raise PermissionDenied("You have no access to any environment.")
    before = visibility.visible_version(request.user, module, old)
    after = visibility.visible_version(request.user, module, new)
    # The engine's diffs: equal content hashes are skipped, only changed files' content is read.
    changes = diff_trees(before.manifest(), after.manifest())
    wanted = {digest for change in changes for digest in (change.old_hash, change.new_hash) if digest}
    content = {
        digest: bytes(data)
        for digest, data in Blob.objects.filter(hash__in=wanted).values_list("hash", "data")
    }
    files = [
        {
            "path": change.path,
            "status": change.status,
            "diff": diff_lines(content.get(change.old_hash), content.get(change.new_hash)),
        }
        for change in changes
    ]
    context = {
        "module": module,
        "application": module.application,
        "old": before,
        "new": after,
        "files": files,
    }
    return render(request, "lifecycle/diff.html", context)
