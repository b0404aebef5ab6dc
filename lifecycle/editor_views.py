"""The browser editor: a draft per user, module and environment, saved file by file, then published."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from lifecycle import access
from lifecycle.archives import ArchiveRejected, human_bytes
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
)
from lifecycle.htmx import HtmxHttpRequest
from lifecycle.line_endings import textarea_text
from lifecycle.models import (
    AccessLevel,
    CurrentVersion,
    Draft,
    Environment,
)
from lifecycle.pipeline import build_rows
from lifecycle.publishing import StaleEdit, content_limits
from lifecycle.views import form_errors, module_for, module_url, report_publish


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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
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
            error="The file could not be saved: " + form_errors(form),
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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = AddFileForm(request.POST, request.FILES)
    add = {"path": request.POST.get("path", ""), "content": request.POST.get("content", "")}
    kept = {"path": add["path"], "text": add["content"]} if add["content"] else None
    draft = None
    try:
        if not form.is_valid():
            raise DraftError("The file could not be added: " + form_errors(form))
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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = RenameFileForm(request.POST)
    draft = None
    try:
        if not form.is_valid():
            raise DraftError("The file could not be renamed: " + form_errors(form))
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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
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
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
    form = DiscardForm(request.POST)
    try:
        if not form.is_valid():
            raise StaleDraft("This form does not say which change of your draft it was made from.")
        draft = find_draft(request.user, module, environment, form.cleaned_data["draft"])
        discard_draft(draft, revision=form.cleaned_data["revision"])
    except StaleDraft as error:
        return _refuse_stale(request, module, environment, "Your draft was not discarded.", error)
    messages.info(request, f"Discarded your draft of {module.name}.")
    return redirect(module_url(module, environment))


@login_required
@require_POST
def editor_publish(request: HtmxHttpRequest, module_id: int, environment_id: int):
    module, environment = module_for(request.user, module_id, environment_id, AccessLevel.PUBLISH)
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
            error="Not published: " + form_errors(form),
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
    report_publish(request, module, environment, result)
    return redirect(module_url(module, environment))
