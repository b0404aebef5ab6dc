from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from lifecycle import access, hooks, visibility
from lifecycle.archives import ArchiveRejected, human_bytes, read_archive
from lifecycle.downloads import version_zip
from lifecycle.editing import (
    DraftError,
    StaleDraft,
    add_file,
    base_manifest,
    delete_file,
    discard_draft,
    file_statuses,
    find_draft,
    open_draft,
    publish_draft,
    read_file,
    rename_file,
    save_file,
    save_text,
    text_bytes,
)
from lifecycle.forms import (
    AddFileForm,
    DeleteFileForm,
    DiscardForm,
    PublishForm,
    RenameFileForm,
    SaveFileForm,
    UploadForm,
)
from lifecycle.history_views import application_history_context
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.line_endings import textarea_text
from lifecycle.models import (
    AccessLevel,
    Application,
    CurrentVersion,
    Draft,
    Environment,
    Module,
    ModuleChange,
    ModuleFile,
    ModuleVersion,
)
from lifecycle.pipeline import build_rows
from lifecycle.publishing import StaleEdit, content_limits, publish
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
@require_GET
def pipeline(request: HtmxHttpRequest):
    environments = _environments_or_403(request.user)
    query = request.GET.get("q", "").strip()[:100]
    show = request.GET.get("show", "")
    if show not in GRID_FILTERS:
        show = ""
    applications = Application.objects.all()
    if query:
        applications = applications.filter(name__icontains=query)
    rows = build_rows(applications, environments)
    if show == "differences":
        rows = [row for row in rows if row.has_differences]
    elif show == "hotfixes":
        rows = [row for row in rows if row.has_open_hotfix]
    context = {
        "environments": environments,
        "rows": rows,
        "query": query,
        "show": show,
        "filters": GRID_FILTERS,
        "refresh_seconds": settings.GRID_REFRESH_SECONDS,
        "colspan": 2 * len(environments),
    }
    return render(request, page_or_partial(request, "lifecycle/pipeline.html", "grid"), context)


@login_required
@require_GET
def application_detail(request: HtmxHttpRequest, application_id: int):
    application = get_object_or_404(Application, pk=application_id)
    environments = _environments_or_403(request.user)
    row = build_rows([application], environments)[0]
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
    return render(request, "lifecycle/application.html", context)


# Modules: browse, download, edit and publish.


def _module_for(user, module_id, environment_id, level):
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
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.VIEW)
    return _render_module(request, module, environment)


@login_required
@require_GET
def module_download(request: HtmxHttpRequest, module_id: int, environment_id: int, number: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.VIEW)
    return version_zip(module, visibility.visible_version(request.user, module, number))


@login_required
@require_POST
def module_upload(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
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
    _report_publish(request, module, environment, result)
    return redirect(_module_url(module, environment))


def _module_url(module, environment):
    return reverse("lifecycle:module", args=[module.pk, environment.pk])


def _report_publish(request, module, environment, result):
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


# The editor.


def _production_mismatch(user, module, environment):
    """The seed advises hotfixing in an environment synchronised with Production: say so when it is not.

    Only to a user who may view Production: what runs there is not for anyone else to learn.
    """
    if environment.is_production or environment.is_first():
        return None
    production = Environment.objects.filter(is_production=True).first()
    if production is None or not access.can(user, production, AccessLevel.VIEW):
        return None
    here, there = build_rows([module.application], [environment, production])[0].cells
    if here.modules == there.modules:
        return None
    return {"production": production, "here": here.label, "there": there.label}


def _render_editor(
    request,
    module,
    environment,
    draft,
    *,
    path=None,
    content=None,
    error=None,
    refused=None,
    kept=None,
    comment=None,
    add=None,
    status=200,
):
    """The editor page, for `draft` or, when a form came for a draft that is gone, without one.

    `content`: posted text to show in the file's textarea instead of the saved one (a refused save).
    `refused`: (what was not done, why) for a form refused as stale (409); `kept`: its text, shown to
    copy next to the file as it is now. `comment`, `add`: what the publish and add forms hold again.
    """
    context = {
        "module": module,
        "application": module.application,
        "environment": environment,
        "draft": draft,
        "error": error,
        "refused": refused,
        "kept": kept,
        "add": add,
        "is_hotfix": not environment.is_first(),
    }
    if draft is not None:
        context.update(_draft_context(request, draft, path, content, comment))
    return render(request, "lifecycle/editor.html", context, status=status)


def _draft_context(request, draft, path, content, comment):
    base = base_manifest(draft)
    statuses = file_statuses(draft, base)
    path = path if path is not None else request.GET.get("path", "")
    if path not in draft.manifest:
        # With no file asked for, open the first one the draft changed: that is the work to see.
        changed = [p for p, status in statuses.items() if status in ("added", "changed")]
        path = next(iter(changed or sorted(draft.manifest)), "")
    editing = _file_in_draft(draft, path, content) if path else None
    current = (
        CurrentVersion.objects.filter(module=draft.module, environment=draft.environment)
        .select_related("version", "changed_by")
        .first()
    )
    stale = current is not None and current.version_id != draft.base_version_id
    return {
        "statuses": statuses,
        "editing": editing,
        "stale": current if stale else None,
        "mismatch": _production_mismatch(request.user, draft.module, draft.environment),
        "comment": draft.comment if comment is None else comment,
        "changed": sum(1 for status in statuses.values() if status),
        "max_file_bytes": content_limits().max_file_bytes,
    }


def _file_in_draft(draft, path, content):
    """What the editor shows of one file: its text, or why it cannot be edited as text."""
    blob = read_file(draft.manifest[path])
    text = textarea_text(bytes(blob.data))
    return {
        "path": path,
        "size": blob.size,
        "hash": blob.hash,
        # A file a textarea would change (not UTF-8, mixed line endings) is only downloaded or replaced.
        "editable": text is not None,
        "binary": blob.is_binary,
        "text": content if content is not None and text is not None else text,
    }


def _draft_file_download(draft, path):
    if path not in draft.manifest:
        raise Http404("No such file in your draft.")
    response = HttpResponse(
        bytes(read_file(draft.manifest[path]).data), content_type="application/octet-stream"
    )
    response["Content-Disposition"] = content_disposition_header(True, path.rsplit("/", 1)[-1])
    response["Cache-Control"] = "private, no-store"
    return response


def _draft_for(request, module_id, environment_id):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    return open_draft(request.user, module, environment)


def _existing_draft(user, module, environment):
    """The user's draft, if any: a posted form never starts one."""
    return Draft.objects.filter(user=user, module=module, environment=environment).first()


def _editor_url(draft, path=""):
    url = reverse("lifecycle:editor", args=[draft.module_id, draft.environment_id])
    return f"{url}?{urlencode({'path': path})}" if path else url


def _upload_bytes(upload) -> bytes:
    limit = content_limits().max_file_bytes
    if upload.size > limit:
        raise DraftError(
            f"{upload.name} is {human_bytes(upload.size)}, over the limit of {human_bytes(limit)} per file."
        )
    return upload.read()


def _refuse_stale(request, module, environment, not_done, error, *, kept=None, comment=None, add=None):
    """409: the form's page was out of date. Nothing changed; the user's text is shown again to copy,
    next to the draft as it is now (or alone, when the draft is gone)."""
    return _render_editor(
        request,
        module,
        environment,
        _existing_draft(request.user, module, environment),
        path=kept["path"] if kept else None,
        refused=(not_done, str(error)),
        kept=kept,
        comment=comment,
        add=add,
        status=409,
    )


@login_required
@require_GET
def editor(request: HtmxHttpRequest, module_id: int, environment_id: int):
    draft = _draft_for(request, module_id, environment_id)
    if "download" in request.GET:
        return _draft_file_download(draft, request.GET["download"])
    return _render_editor(request, draft.module, draft.environment, draft)


@login_required
@require_POST
def editor_save(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = SaveFileForm(request.POST, request.FILES)
    path, content = request.POST.get("path", ""), request.POST.get("content")
    kept = {"path": path, "text": content} if content else None
    if not form.is_valid():
        return _render_editor(
            request,
            module,
            environment,
            _existing_draft(request.user, module, environment),
            path=path,
            content=content,
            error="The file could not be saved: " + _form_errors(form),
            kept=kept,
            status=422,
        )
    data, draft = form.cleaned_data, None
    state = {"revision": data["revision"], "from_hash": data["from_hash"] or None}
    try:
        draft = find_draft(request.user, module, environment, data["draft"])
        if data["upload"] is not None:
            save_file(draft, path, _upload_bytes(data["upload"]), **state)
        else:
            save_text(draft, path, data["content"], **state)
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, f"{path} was not saved.", error, kept=kept)
    except DraftError as error:
        return _render_editor(
            request, module, environment, draft, path=path, content=content, error=str(error), status=422
        )
    messages.success(request, f"Saved {path} in your draft.")
    return redirect(_editor_url(draft, path))


@login_required
@require_POST
def editor_add(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = AddFileForm(request.POST, request.FILES)
    add = {"path": request.POST.get("path", ""), "content": request.POST.get("content", "")}
    kept = {"path": add["path"], "text": add["content"]} if add["content"] else None
    draft = None
    try:
        if not form.is_valid():
            raise DraftError("The file could not be added: " + _form_errors(form))
        draft = find_draft(request.user, module, environment, form.cleaned_data["draft"])
        upload = form.cleaned_data["upload"]
        if upload is not None:
            data = _upload_bytes(upload)
        else:
            data = text_bytes(add["path"], None, form.cleaned_data["content"])
        path = add_file(draft, form.cleaned_data["path"], data)
    except StaleDraft as error:
        return _refuse_stale(
            request, module, environment, "The file was not added.", error, kept=kept, add=add
        )
    except DraftError as error:
        draft = draft or _existing_draft(request.user, module, environment)
        return _render_editor(request, module, environment, draft, error=str(error), add=add, status=422)
    messages.success(request, f"Added {path} to your draft.")
    return redirect(_editor_url(draft, path))


@login_required
@require_POST
def editor_rename(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = RenameFileForm(request.POST)
    draft = None
    try:
        if not form.is_valid():
            raise DraftError("The file could not be renamed: " + _form_errors(form))
        data = form.cleaned_data
        draft = find_draft(request.user, module, environment, data["draft"])
        path = rename_file(draft, data["path"], data["new_path"], revision=data["revision"])
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, "The file was not renamed.", error)
    except DraftError as error:
        draft = draft or _existing_draft(request.user, module, environment)
        return _render_editor(request, module, environment, draft, error=str(error), status=422)
    messages.success(request, f"Renamed {data['path']} to {path} in your draft.")
    return redirect(_editor_url(draft, path))


@login_required
@require_POST
def editor_delete(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = DeleteFileForm(request.POST)
    draft = None
    try:
        if not form.is_valid():
            raise DraftError("Choose a file to delete.")
        data = form.cleaned_data
        draft = find_draft(request.user, module, environment, data["draft"])
        delete_file(draft, data["path"], revision=data["revision"], from_hash=data["from_hash"] or "")
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, "The file was not deleted.", error)
    except DraftError as error:
        draft = draft or _existing_draft(request.user, module, environment)
        return _render_editor(request, module, environment, draft, error=str(error), status=422)
    messages.success(request, f"Deleted {data['path']} from your draft.")
    return redirect(_editor_url(draft))


@login_required
@require_POST
def editor_discard(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = DiscardForm(request.POST)
    try:
        if not form.is_valid():
            raise StaleDraft("This form does not say which change of your draft it was made from.")
        draft = find_draft(request.user, module, environment, form.cleaned_data["draft"])
        discard_draft(draft, revision=form.cleaned_data["revision"])
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, "Your draft was not discarded.", error)
    messages.info(request, f"Discarded your draft of {module.name}.")
    return redirect(_module_url(module, environment))


@login_required
@require_POST
def editor_publish(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = _module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = PublishForm(request.POST)
    comment = request.POST.get("comment", "")
    draft = _existing_draft(request.user, module, environment)
    if not form.is_valid():
        return _render_editor(
            request,
            module,
            environment,
            draft,
            comment=comment,
            error="Not published: " + _form_errors(form),
            status=422,
        )
    comment = form.cleaned_data["comment"]
    try:
        draft = find_draft(request.user, module, environment, form.cleaned_data["draft"])
        result = publish_draft(draft, comment, revision=form.cleaned_data["revision"])
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, "Nothing was published.", error, comment=comment)
    except StaleEdit as error:
        # The comment is kept with the draft, not a change of its files: the revision stays.
        Draft.objects.filter(pk=draft.pk).update(comment=comment)
        draft.comment = comment
        return _render_editor(
            request,
            module,
            environment,
            draft,
            error=f"Not published: {error} Your draft is kept.",
            status=409,
        )
    except ArchiveRejected as error:
        return _render_editor(
            request, module, environment, draft, comment=comment, error=str(error), status=422
        )
    _report_publish(request, module, environment, result)
    return redirect(_module_url(module, environment))


def _form_errors(form):
    return " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
