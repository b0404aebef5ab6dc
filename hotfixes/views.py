"""Hotfix pages: merging backward, propagating all the way, the timeline and Mark Hotfix as Solved."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hotfixes.engine.linediff import diff_lines
from hotfixes.engine.textmerge import resolve
from hotfixes.forms import MergeSelectionForm
from hotfixes.merging import (
    MAX_COMMENT,
    MergeDirectionError,
    MergeError,
    StaleMerge,
    check_fresh,
    evaluate,
    perform,
    prepare,
)
from hotfixes.models import Hotfix, HotfixChange
from hotfixes.propagation import NeedsConfirmation, SolveError, plan_propagation, statuses
from hotfixes.propagation import mark_solved as solve
from hotfixes.propagation import propagate as propagate_all
from hotfixes.timeline import timeline
from lifecycle import access
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import AccessLevel, Application, Environment
from lifecycle.request_values import parse_id

MAX_TEXT = MAX_COMMENT  # Notes, as every comment in the console.


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


def _render_merge(request, prepared, form, *, error=None, status=200, preview=False):
    try:
        outcome = evaluate(prepared, form.selections())
    except MergeError as problem:
        outcome = None
        if error is None:
            error, status = str(problem), 422
    context = {
        "prepared": prepared,
        "modules": form.rows(outcome),
        "application": prepared.application,
        "source": prepared.source,
        "target": prepared.target,
        "outcome": outcome,
        "preview": preview,
        "error": error,
        "comment": form.comment_text,
        "can_merge": access.can(request.user, prepared.target, AccessLevel.PUBLISH),
    }
    return render(request, "hotfixes/merge.html", context, status=status)


def _refuse_merge(request, application, source, target, problem, status):
    """The merge page saying only why it cannot be: a forward merge (400), or bases that conflict (422)."""
    context = {
        "application": application,
        "source": source,
        "target": target,
        "refused": str(problem),
        "direction": isinstance(problem, MergeDirectionError),
        "forward": (source.position, source.pk) < (target.position, target.pk),
    }
    return render(request, "hotfixes/merge.html", context, status=status)


@login_required
@never_cache  # The page carries the fingerprint of what it shows: never shown again from a cache.
@require_http_methods(["GET", "POST"])
def merge(request: HtmxHttpRequest):
    data = request.POST if request.method == "POST" else request.GET
    application, source, target = _merge_sides(request.user, data)
    try:
        prepared = prepare(application, source, target)
    except MergeDirectionError as wrong:
        # The pair can never be merged, whatever the state: a bad request, not a refused merge.
        return _refuse_merge(request, application, source, target, wrong, 400)
    except MergeError as problem:
        return _refuse_merge(request, application, source, target, problem, 422)
    if request.method == "GET" or data.get("action") == "preview":
        form = MergeSelectionForm(prepared, data if request.method == "POST" else None)
        return _render_merge(request, prepared, form, preview=True)
    access.require(request.user, target, AccessLevel.PUBLISH)
    form = MergeSelectionForm(prepared, data)
    try:
        # Stale first: the form's fields name files by position, so its choices mean something
        # only on the page it came from.
        check_fresh(prepared, data.get("fingerprint", ""))
        problem = form.problem()
        if problem:
            return _render_merge(request, prepared, form, error=problem, status=422, preview=True)
        record = perform(
            prepared,
            form.selections(),
            user=request.user,
            fingerprint=data.get("fingerprint", ""),
            comment=form.comment_text,
        )
    except StaleMerge as stale:
        fresh = prepare(application, source, target)
        return _render_merge(request, fresh, MergeSelectionForm(fresh), error=str(stale), status=409)
    except MergeError as problem:
        return _render_merge(request, prepared, form, error=str(problem), status=422, preview=True)
    names = ", ".join(item.module.name for item in record.items.select_related("module"))
    messages.success(request, f"Merged {names} from {source.name} into {target.name}.")
    return redirect("lifecycle:application", application.pk)


@login_required
@never_cache  # Prepared afresh on every visit, the browser's Back button included.
@require_http_methods(["GET", "POST"])
def propagate(request: HtmxHttpRequest, hotfix_id: int):
    """Prepare the merges into every earlier environment in turn; publish them all after one review."""
    hotfix = get_object_or_404(Hotfix.objects.select_related("application", "environment"), pk=hotfix_id)
    access.require(request.user, hotfix.environment, AccessLevel.VIEW)
    visible = access.visible_environments(request.user)
    propagation = plan_propagation(hotfix, visible)
    error, status = None, 200
    comment = request.POST.get("comment", "")
    if request.method == "POST":
        try:
            propagate_all(
                propagation,
                user=request.user,
                fingerprints=request.POST.getlist("fingerprint"),
                comment=comment,
            )
        except StaleMerge as stale:
            error, status = str(stale), 409
            propagation = plan_propagation(hotfix, visible)
        except MergeError as problem:
            # A conflict still to resolve is the state's doing (409); content refused is the merge's (422).
            error, status = str(problem), 409 if propagation.stopped else 422
        else:
            names = ", ".join(step.target.name for step in propagation.pending)
            messages.success(
                request,
                f"Merged the hotfix into {names}." if names else "Every earlier environment already had it.",
            )
            return redirect("lifecycle:application", hotfix.application_id)
    context = {
        "hotfix": hotfix,
        "application": hotfix.application,
        "propagation": propagation,
        "steps": [_step_summary(step) for step in propagation.steps],
        "stopped": propagation.stopped,
        "pending": propagation.pending,
        "error": error,
        "comment": comment,
        "max_comment": MAX_COMMENT,
        "can_merge": all(
            access.can(request.user, p.target, AccessLevel.PUBLISH) for p in propagation.pending
        ),
    }
    return render(request, "hotfixes/propagate.html", context, status=status)


def _step_summary(prepared) -> dict:
    """What one environment will receive: per module, each text file with the hunks the merge changes there.

    Only the files the source changed are read (not the whole module, as publishing does).
    """
    modules = []
    for merge in prepared.modules:
        files = []
        for file in merge.files:
            diff = None
            if file.kind == "text" and not file.is_conflict:
                before = merge.tree.read(file.target_hash) if file.target_hash else None
                diff = diff_lines(before, resolve(file.regions).text.encode("utf-8"))
            files.append({"file": file, "diff": diff})
        modules.append({"merge": merge, "files": files})
    return {"prepared": prepared, "modules": modules}


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


# The hotfix list: every hotfix, open and solved, of the environments the user can view.

HOTFIXES_PER_PAGE = 50
HOTFIX_STATES = {"": "Open and solved", "open": "Open", "solved": "Solved"}


def _hotfix_filters(request, applications) -> dict:
    """The list's filters from the query; an unknown application or state filters nothing."""
    application_id = parse_id(request.GET.get("application"))
    state = request.GET.get("state", "")
    return {
        "application": next((a for a in applications if a.pk == application_id), None),
        "state": state if state in HOTFIX_STATES else "",
    }


@login_required
@require_GET
def hotfix_list(request: HtmxHttpRequest):
    visible = access.visible_environments(request.user)
    if not visible:
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )
    applications = list(Application.objects.all())
    filters = _hotfix_filters(request, applications)
    hotfixes = Hotfix.objects.filter(environment__in=visible)
    if filters["application"]:
        hotfixes = hotfixes.filter(application=filters["application"])
    if filters["state"]:
        hotfixes = hotfixes.filter(solved_at__isnull=filters["state"] == "open")
    hotfixes = (
        hotfixes.select_related("application", "environment", "opened_by", "solved_by")
        .prefetch_related(Prefetch("changes", queryset=HotfixChange.objects.select_related("module")))
        # Open ones first: they still need work. Then the most recently opened.
        .order_by(F("solved_at").desc(nulls_first=True), "-opened_at", "-id")
    )
    page = Paginator(hotfixes, HOTFIXES_PER_PAGE).get_page(request.GET.get("page"))
    for hotfix in page.object_list:
        hotfix.module_names = sorted({change.module.name for change in hotfix.changes.all()})
    context = {
        "applications": applications,
        "filters": filters,
        "states": HOTFIX_STATES,
        "page": page,
        "hotfixes": page.object_list,
        "filtered": any(filters.values()),
    }
    return render(request, page_or_partial(request, "hotfixes/hotfixes.html", "hotfixes"), context)


def _lacking_seen_by(user, lacking) -> dict:
    """What the confirmation says of the environments lacking the hotfix: names only where the user sees.

    Every environment counts (a hotfix is solved when all have it), but one the user cannot view
    is only counted, never named, and its state never shown.
    """
    levels = access.levels_for(user)
    shown = [status for status in lacking if status.environment.pk in levels]
    return {"lacking": lacking, "lacking_shown": shown, "lacking_hidden": len(lacking) - len(shown)}


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
            **_lacking_seen_by(request.user, lacking),
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
        context = {
            "hotfix": hotfix,
            "application": hotfix.application,
            **_lacking_seen_by(request.user, missing.lacking),
        }
        return render(request, "hotfixes/confirm_solved.html", context, status=409)
    except SolveError as problem:
        messages.error(request, str(problem))
        return redirect("lifecycle:application", hotfix.application_id)
    messages.success(
        request, f"Marked the hotfix of {hotfix.application.name} in {hotfix.environment.name} as solved."
    )
    return redirect(reverse("lifecycle:application", args=[hotfix.application_id]))
