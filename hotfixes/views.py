"""Hotfix pages: merging backward, propagating all the way, the timeline and Mark Hotfix as Solved."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hotfixes.engine.linediff import diff_lines
from hotfixes.merging import MergeError, StaleMerge, evaluate, perform, prepare, read_selection
from hotfixes.models import Hotfix, HotfixChange
from hotfixes.propagation import NeedsConfirmation, SolveError, statuses
from hotfixes.propagation import mark_solved as solve
from hotfixes.timeline import timeline
from lifecycle import access
from lifecycle.htmx import HtmxHttpRequest
from lifecycle.models import AccessLevel, Application, Environment
from lifecycle.request_values import parse_id

MAX_TEXT = 2000  # Comments and notes, as everywhere in the console.


def application_section(request, application, environments) -> dict:
    """The application page's open hotfixes, with where each has reached (see lifecycle.hooks)."""
    open_hotfixes = list(
        Hotfix.objects.open()
        .filter(application=application, environment__in=environments)
        .select_related("environment", "opened_by")
        .prefetch_related(
            Prefetch("changes", queryset=HotfixChange.objects.select_related("module", "version"))
        )
    )
    propagation = statuses(open_hotfixes, environments)
    for hotfix in open_hotfixes:
        hotfix.propagation = propagation[hotfix.pk]
        hotfix.can_solve = access.can(request.user, hotfix.environment, AccessLevel.FULL)
    return {"template": "hotfixes/_application_hotfixes.html", "open_hotfixes": open_hotfixes}


def _merge_sides(user, data):
    """The application, source and target of a merge, or 404/403."""
    application = get_object_or_404(Application, pk=parse_id(data.get("application")) or 0)
    source = get_object_or_404(Environment, pk=parse_id(data.get("source")) or 0)
    target = get_object_or_404(Environment, pk=parse_id(data.get("target")) or 0)
    access.require(user, source, AccessLevel.VIEW)
    access.require(user, target, AccessLevel.VIEW)
    return application, source, target


def _render_merge(request, prepared, data, *, error=None, status=200, preview=False):
    selections = read_selection(prepared, data)
    try:
        outcome = evaluate(prepared, selections)
    except MergeError as problem:
        outcome, error, status = None, str(problem), 422
    context = {
        "prepared": prepared,
        "modules": present(prepared, selections, outcome, data),
        "application": prepared.application,
        "source": prepared.source,
        "target": prepared.target,
        "selections": selections,
        "outcome": outcome,
        "preview": preview,
        "error": error,
        "submitted": data is not None and data.get("submitted") == "1",
        "data": data,
        "comment": (data or {}).get("comment", ""),
        "can_merge": access.can(request.user, prepared.target, AccessLevel.PUBLISH),
    }
    return render(request, "hotfixes/merge.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def merge(request: HtmxHttpRequest):
    data = request.POST if request.method == "POST" else request.GET
    application, source, target = _merge_sides(request.user, data)
    if source == target:
        raise PermissionDenied("Choose two different environments to merge.")
    prepared = prepare(application, source, target)
    if request.method == "GET" or data.get("action") == "preview":
        return _render_merge(request, prepared, data if request.method == "POST" else None, preview=True)
    access.require(request.user, target, AccessLevel.PUBLISH)
    if len(data.get("comment", "")) > MAX_TEXT:
        error = f"A comment has at most {MAX_TEXT} characters; nothing was merged."
        return _render_merge(request, prepared, data, error=error, status=422, preview=True)
    try:
        record = perform(
            prepared,
            read_selection(prepared, data),
            user=request.user,
            fingerprint=data.get("fingerprint", ""),
            comment=data.get("comment", ""),
        )
    except StaleMerge as stale:
        return _render_merge(
            request, prepare(application, source, target), None, error=str(stale), status=409
        )
    except MergeError as problem:
        return _render_merge(request, prepared, data, error=str(problem), status=422, preview=True)
    names = ", ".join(item.module.name for item in record.items.select_related("module"))
    messages.success(request, f"Merged {names} from {source.name} into {target.name}.")
    return redirect("lifecycle:application", application.pk)


def _earlier_environments(hotfix, visible):
    """The environments before the hotfix's, nearest first: the order a hotfix travels back."""
    return [
        e
        for e in reversed(visible)
        if (e.position, e.pk) < (hotfix.environment.position, hotfix.environment.pk)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def propagate(request: HtmxHttpRequest, hotfix_id: int):
    """Prepare the merges into every earlier environment in turn; publish them all after one review."""
    hotfix = get_object_or_404(Hotfix.objects.select_related("application", "environment"), pk=hotfix_id)
    visible = access.visible_environments(request.user)
    access.require(request.user, hotfix.environment, AccessLevel.VIEW)
    module_ids = list(hotfix.changes.values_list("module_id", flat=True))
    steps, stopped = [], None
    for environment in _earlier_environments(hotfix, visible):
        prepared = prepare(hotfix.application, hotfix.environment, environment, module_ids)
        steps.append(prepared)
        if prepared.has_conflicts:
            stopped = prepared
            break
    error, status = None, 200
    if request.method == "POST" and stopped is not None:
        error = f"Stopped at {stopped.target.name}: resolve its conflict first. Nothing was merged."
        status = 409
    if request.method == "POST" and stopped is None:
        fingerprints = request.POST.getlist("fingerprint")
        try:
            for prepared in steps:
                access.require(request.user, prepared.target, AccessLevel.PUBLISH)
            if len(fingerprints) != len(steps):
                raise StaleMerge("The environments changed after the merges were prepared. Check them again.")
            with transaction.atomic():
                for prepared, fingerprint in zip(steps, fingerprints, strict=True):
                    if prepared.modules:
                        perform(
                            prepared,
                            read_selection(prepared, None),
                            user=request.user,
                            fingerprint=fingerprint,
                            comment=f"Propagate the hotfix from {hotfix.environment.name}",
                        )
        except (StaleMerge, MergeError) as problem:
            error, status = str(problem), 409
            steps = [prepare(hotfix.application, hotfix.environment, p.target, module_ids) for p in steps]
        else:
            names = ", ".join(p.target.name for p in steps if p.modules)
            messages.success(
                request, f"Merged the hotfix into {names}." if names else "Every environment already had it."
            )
            return redirect("lifecycle:application", hotfix.application_id)
    context = {
        "hotfix": hotfix,
        "application": hotfix.application,
        "steps": steps,
        "stopped": stopped,
        "error": error,
        "can_merge": all(access.can(request.user, p.target, AccessLevel.PUBLISH) for p in steps),
    }
    return render(request, "hotfixes/propagate.html", context, status=status)


@login_required
@require_GET
def hotfix_detail(request: HtmxHttpRequest, hotfix_id: int):
    hotfix = get_object_or_404(
        Hotfix.objects.select_related("application", "environment", "opened_by", "solved_by"), pk=hotfix_id
    )
    access.require(request.user, hotfix.environment, AccessLevel.VIEW)
    visible = access.visible_environments(request.user)
    context = {
        "hotfix": hotfix,
        "application": hotfix.application,
        "changes": hotfix.changes.select_related("module", "version", "replaced_version"),
        "statuses": statuses([hotfix], visible).get(hotfix.pk, []),
        "timeline": timeline(hotfix, visible),
        "can_solve": hotfix.is_open and access.can(request.user, hotfix.environment, AccessLevel.FULL),
    }
    return render(request, "hotfixes/hotfix.html", context)


@login_required
@require_POST
def mark_solved(request: HtmxHttpRequest, hotfix_id: int):
    hotfix = get_object_or_404(Hotfix.objects.select_related("application", "environment"), pk=hotfix_id)
    access.require(request.user, hotfix.environment, AccessLevel.FULL)
    note = request.POST.get("note", "")
    if len(note) > MAX_TEXT:
        lacking = [
            s for s in statuses([hotfix], list(Environment.objects.all()))[hotfix.pk] if s.state != "all"
        ]
        context = {
            "hotfix": hotfix,
            "application": hotfix.application,
            "lacking": lacking,
            "error": f"A note has at most {MAX_TEXT} characters; the hotfix was not marked solved.",
        }
        return render(request, "hotfixes/confirm_solved.html", context, status=422)
    try:
        solve(
            hotfix.pk,
            list(Environment.objects.all()),
            user=request.user,
            confirm_incomplete=request.POST.get("confirm") == "yes",
            note=note,
        )
    except NeedsConfirmation as missing:
        context = {"hotfix": hotfix, "application": hotfix.application, "lacking": missing.lacking}
        return render(request, "hotfixes/confirm_solved.html", context, status=409)
    except SolveError as problem:
        messages.error(request, str(problem))
        return redirect("lifecycle:application", hotfix.application_id)
    messages.success(
        request, f"Marked the hotfix of {hotfix.application.name} in {hotfix.environment.name} as solved."
    )
    return redirect(reverse("lifecycle:application", args=[hotfix.application_id]))


def present(prepared, selections, outcome, data):
    """Nested rows for the merge template: modules, files, regions, with what is checked and chosen."""
    submitted = data is not None and data.get("submitted") == "1"
    modules = []
    for merge in prepared.modules:
        m = merge.module.pk
        taken, selection = selections[m]
        merged = outcome.merged.get(m) if outcome else None
        unresolved = {(u.path, u.index) for u in (merged.unresolved if merged else [])}
        files = []
        for f, file in enumerate(merge.files):
            regions = []
            for region in file.regions:
                r = region.index
                resolution = data.get(f"resolve-{m}-{f}-{r}", "") if submitted else ""
                regions.append(
                    {
                        "region": region,
                        "r": r,
                        "checked": region.kind == "source"
                        and r in selection.regions.get(file.path, set(file.source_changes)),
                        "resolution": resolution,
                        "edit": data.get(f"edit-{m}-{f}-{r}") if submitted else "".join(region.source),
                        "unresolved": (file.path, r) in unresolved,
                    }
                )
            preview = None
            if merged and merged.files is not None and taken and file.path not in selection.skipped:
                before = merge.tree.read(file.target_hash) if file.target_hash else None
                after = merged.files.get(file.path)
                if before != after:
                    preview = diff_lines(before, after)
            files.append(
                {
                    "f": f,
                    "file": file,
                    "taken": file.path not in selection.skipped,
                    "regions": regions,
                    "choice": selection.choices.get(file.path, ""),
                    "unresolved": (file.path, None) in unresolved,
                    "preview": preview,
                }
            )
        modules.append(
            {
                "merge": merge,
                "taken": taken,
                "files": files,
                "complete": outcome.complete.get(m) if outcome else None,
            }
        )
    return modules
