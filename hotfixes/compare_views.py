"""Compare an application between two environments: the page (or dialog) and one file's diff on demand."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from hotfixes.comparing import compare_application, file_diff, load_inline_diffs
from lifecycle import access
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import AccessLevel, Application, Environment, Module
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
        "can_merge_into_target": access.can(request.user, target, AccessLevel.PUBLISH),
        "can_merge_into_source": access.can(request.user, source, AccessLevel.PUBLISH),
    }
    return render(request, page_or_partial(request, "hotfixes/compare.html", "comparison"), context)


@login_required
@require_GET
def compare_file(request: HtmxHttpRequest):
    """One file's changes on one side since the merge base, for a diff too large to show inline."""
    application, source, target = _comparison_for(request)
    module = get_object_or_404(Module, pk=_id(request.GET, "module"), application=application)
    version = get_object_or_404(module.versions, number=_id(request.GET, "version"))
    # No base: the two sides share no history, and the file is measured from nothing.
    base = (
        get_object_or_404(module.versions, number=_id(request.GET, "base"))
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
