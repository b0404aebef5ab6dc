from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lifecycle import access, hooks, refresh, revision, visibility
from lifecycle.archives import ArchiveRejected, human_bytes, read_archive
from lifecycle.downloads import version_zip
from lifecycle.forms import (
    UploadForm,
)
from lifecycle.history_views import application_history_context
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import (
    AccessLevel,
    Application,
    CurrentVersion,
    Environment,
    Module,
    ModuleChange,
    ModuleFile,
    ModuleVersion,
)
from lifecycle.pipeline import attach_live_states, build_rows
from lifecycle.publishing import content_limits, publish
from lifecycle.request_values import parse_id

GRID_FILTERS = {"": "All", "differences": "With differences", "hotfixes": "With open hotfixes"}


def _environments_or_403(user):
    environments = access.visible_environments(user)
    if not environments:
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )
    return environments


@login_required
@require_http_methods(["GET", "POST"])
def pipeline(request: HtmxHttpRequest):
    # POST is the grid's refresh (lifecycle/refresh.py): 204 while the revision it shows is current.
    check = refresh.Check(request) if request.method == "POST" else None
    if check and check.unchanged:
        return refresh.no_content()
    # Before the rows: a change committed meanwhile bumps it again.
    pipeline_revision = check.value if check else revision.current()
    environments = _environments_or_403(request.user)
    page_token = refresh.token(pipeline_revision, environments, check.agents if check else "")
    query = request.GET.get("q", "").strip()[:100]
    show = request.GET.get("show", "")
    if show not in GRID_FILTERS:
        show = ""
    # A filter may take rows in or out with any change: a filtered grid is compared whole.
    changed = check.changed_applications() if check and not show else None
    if changed is not None:
        return _refresh_rows(request, check, changed, environments, page_token)
    applications = Application.objects.all()
    if query:
        applications = applications.filter(name__icontains=query)
    # One page of GRID_PAGE_SIZE applications. Without a filter only that page's rows are built;
    # a filter needs every row's state to know which rows it keeps, then pages those.
    if show:
        rows = build_rows(applications, environments)
        if show == "differences":
            rows = [row for row in rows if row.has_differences]
        elif show == "hotfixes":
            rows = [row for row in rows if row.has_open_hotfix]
        page = Paginator(rows, settings.GRID_PAGE_SIZE).get_page(request.GET.get("page"))
        rows = list(page.object_list)
    else:
        page = Paginator(list(applications), settings.GRID_PAGE_SIZE).get_page(request.GET.get("page"))
        rows = build_rows(page.object_list, environments)
    agents = attach_live_states(rows, environments)
    context = {
        "environments": environments,
        "heads": [(environment, agents.get(environment.pk)) for environment in environments],
        "rows": rows,
        "page": page,
        "query": query,
        "show": show,
        "filters": GRID_FILTERS,
        "refresh_seconds": settings.GRID_REFRESH_SECONDS,
        "revision": page_token,
        "colspan": 2 * len(environments),
    }
    if request.method == "POST":
        response = render(request, "lifecycle/pipeline.html#grid", context)
        response.content = refresh.stamp(response.content.decode())
        return refresh.changed_parts(request, response, "#grid")
    response = render(request, page_or_partial(request, "lifecycle/pipeline.html", "grid"), context)
    response.content = refresh.stamp(response.content.decode())
    return response


def _refresh_rows(request, check, changed: set[int], environments, page_token: str) -> HttpResponse:
    """A grid refresh after changes to some applications: their rows among those shown, and the heads."""
    ids = [pk for pk in refresh.shown_rows(request) if pk in changed]
    token = refresh.token_span("grid-revision", page_token)
    if not ids and not check.minute_moved:  # Only rows not shown changed: the new revision is all.
        return refresh.changed_only(request, "", token)
    rows = build_rows(Application.objects.filter(pk__in=ids), environments) if ids else []
    agents = attach_live_states(rows, environments)
    heads = [(environment, agents.get(environment.pk)) for environment in environments]
    html = render_to_string("lifecycle/pipeline.html#refreshed", {"heads": heads, "rows": rows}, request)
    return refresh.changed_only(request, refresh.stamp(html), token)


@login_required
@require_http_methods(["GET", "POST"])
def application_detail(request: HtmxHttpRequest, application_id: int):
    # POST is the page's refresh, as the grid's (lifecycle/refresh.py).
    check = refresh.Check(request) if request.method == "POST" else None
    if check and check.unchanged:
        return refresh.no_content()
    pipeline_revision = check.value if check else revision.current()
    application = get_object_or_404(Application, pk=application_id)
    environments = _environments_or_403(request.user)
    page_token = refresh.token(pipeline_revision, environments, check.agents if check else "")
    changed = check.changed_applications() if check and not check.minute_moved else None
    if changed is not None and application.pk not in changed:
        # Other applications changed, not this one (its times say minutes: not when the minute moved).
        return refresh.changed_only(request, "", refresh.token_span("application-revision", page_token))
    row = build_rows([application], environments)[0]
    attach_live_states([row], environments)
    modules = list(application.modules.all())
    version_ids = {version_id for cell in row.cells for version_id in cell.modules.values()}
    numbers = dict(ModuleVersion.objects.filter(pk__in=version_ids).values_list("pk", "number"))
    red = hooks.hotfix_state().hotfixed_modules([application.pk], [e.pk for e in environments])
    module_rows = []
    for module in modules:
        entries = []
        for cell in row.cells:
            version_id = cell.modules.get(module.pk)
            entries.append(
                {
                    "environment": cell.environment,
                    "can_publish": access.can(request.user, cell.environment, AccessLevel.PUBLISH),
                    "number": numbers.get(version_id),
                    "changed": module.pk in cell.changed_modules and version_id is not None,
                    "hotfix": (cell.environment.pk, module.pk) in red,
                }
            )
        module_rows.append({"module": module, "entries": entries})
    context = {
        "application": application,
        "environments": environments,
        "row": row,
        "module_rows": module_rows,
        "tags": visibility.visible_tags(request.user, application)
        .select_related("environment", "created_by")
        .order_by("-major", "-minor", "-patch"),
        "changes": ModuleChange.objects.filter(
            module__application=application, environment__in=environments
        ).select_related("module", "environment", "version", "previous_version", "user")[:25],
        "sections": hooks.application_sections(request, application, environments),
    }
    context.update(application_history_context(application, environments, request.user))
    context["revision"] = page_token
    context["refresh_seconds"] = settings.GRID_REFRESH_SECONDS
    response = render(request, "lifecycle/application.html", context)
    response.content = refresh.stamp(response.content.decode())
    if request.method == "POST":
        return refresh.changed_parts(request, response, None)
    return response


# Modules: browse, download, edit and publish.


def module_for(user, module_id, environment_id, level):
    """The module and environment of a module URL, or 404/403: the one access check for module pages."""
    module = get_object_or_404(Module.objects.select_related("application"), pk=module_id)
    environment = get_object_or_404(Environment, pk=environment_id)
    access.require(user, environment, level)
    return module, environment


def _file_tree(entries):
    """Sorted file rows with their folders interleaved, each with a depth for indenting.

    Sorted by their names, a folder's files follow one another, so a file's folders are
    those of the file before it up to where the two part; only the folders after that
    are new. (Joining every folder of every path again took seconds for deep paths.)
    """
    rows, folders, folder_paths = [], [], []  # the previous file's folders, and their paths
    for parts, entry in sorted(((e["path"].split("/"), e) for e in entries), key=lambda item: item[0]):
        *names, name = parts
        shared = 0
        while shared < min(len(names), len(folders)) and names[shared] == folders[shared]:
            shared += 1
        folders, folder_paths = names, folder_paths[:shared]
        for depth in range(shared, len(names)):
            path = f"{folder_paths[-1]}/{names[depth]}" if depth else names[depth]
            folder_paths.append(path)
            rows.append({"folder": True, "name": names[depth] + "/", "depth": depth, "path": path})
        rows.append({**entry, "folder": False, "name": name, "depth": len(names)})
    return rows


def _file_view(version, path):
    """What the viewer shows for one file of a version: numbered lines, or size and hash for binaries."""
    if version is None or not path:
        return None
    row = ModuleFile.objects.filter(version=version, path=path).select_related("blob").first()
    if row is None:
        return {"path": path, "missing": True}
    blob = row.blob
    if blob.is_binary:
        return {"path": path, "binary": True, "size": blob.size, "hash": blob.hash}
    lines = bytes(blob.data).decode("utf-8").splitlines()
    return {"path": path, "lines": list(enumerate(lines, start=1)), "size": blob.size, "hash": blob.hash}


def _render_module(request, module, environment, *, upload_form=None, upload_error=None, status=200):
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    # Only the versions the user may see (lifecycle.visibility), in one query whatever their number.
    versions = list(
        visibility.visible_versions(request.user, module)
        .select_related("created_by", "published_in", "parent", "merged_from")
        .order_by("-number")
    )
    by_number = {version.number: version for version in versions}
    _hide_unseen_links(request.user, versions)
    wanted = parse_id(request.GET.get("version", ""))
    if wanted is not None and wanted not in by_number:
        # Hidden or missing alike, so that a hidden version's existence is not confirmed.
        raise Http404(f"{module.name} has no version {wanted} that you can see.")
    selected = by_number.get(wanted) or (current.version if current else None)
    files = (
        list(selected.files.values("path", "blob_id", "blob__size", "blob__is_binary")) if selected else []
    )
    path = request.GET.get("path") or (files[0]["path"] if len(files) == 1 else "")
    context = {
        "module": module,
        "application": module.application,
        "environment": environment,
        "current": current.version if current else None,
        "selected": selected,
        "versions": versions,
        "tree": _file_tree(files),
        "file": _file_view(selected, path),
        "can_publish": access.can(request.user, environment, AccessLevel.PUBLISH),
        "upload_form": upload_form or UploadForm(),
        "upload_error": upload_error,
    }
    return render(request, page_or_partial(request, "lifecycle/module.html", "file"), context, status=status)


def _hide_unseen_links(user, versions):
    """What the history shows of each version's relatives: only versions and environments the user sees.

    A merge's source or a version's parent may be a version the user may not see (a Production hotfix
    merged back), and a visible version may have been published where the user has no access.
    """
    shown = {version.pk for version in versions}
    levels = access.levels_for(user)
    for version in versions:
        version.shown_parent = version.parent if version.parent_id in shown else None
        version.shown_merged_from = version.merged_from if version.merged_from_id in shown else None
        version.shown_published_in = version.published_in if version.published_in_id in levels else None


@login_required
@require_GET
def module_detail(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.VIEW)
    return _render_module(request, module, environment)


@login_required
@require_GET
def module_download(request: HtmxHttpRequest, module_id: int, environment_id: int, number: int):
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.VIEW)
    return version_zip(module, visibility.visible_version(request.user, module, number))


@login_required
@require_POST
def module_upload(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_module(request, module, environment, upload_form=form, status=422)
    archive = form.cleaned_data["archive"]
    try:
        limits = content_limits()
        if archive.size > limits.max_archive_bytes:
            raise ArchiveRejected(
                "archive_too_large",
                f"The zip is {human_bytes(archive.size)}, over the limit of "
                f"{human_bytes(limits.max_archive_bytes)}; nothing was published.",
            )
        files = read_archive(archive, limits)
        result = publish(module, environment, files, user=request.user, comment=form.cleaned_data["comment"])
    except ArchiveRejected as error:
        return _render_module(
            request, module, environment, upload_form=form, upload_error=str(error), status=422
        )
    report_publish(request, module, environment, result)
    return redirect(module_url(module, environment))


def module_url(module, environment):
    return reverse("lifecycle:module", args=[module.pk, environment.pk])


def report_publish(request, module, environment, result):
    if not result.created:
        messages.info(
            request,
            f"No changes: the content is identical to {module.name} v{result.version.number} "
            f"in {environment.name}. Nothing was published.",
        )
        return
    hotfix = "" if environment.is_first() else " This change is tracked as a hotfix."
    messages.success(
        request, f"Published {module.name} v{result.version.number} to {environment.name}.{hotfix}"
    )


def form_errors(form):
    return " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
