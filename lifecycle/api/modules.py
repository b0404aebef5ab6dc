"""Modules and their versions: publish a zip, download a version or an environment's current one.

Each operation calls the browser's domain function (lifecycle.publishing.publish,
lifecycle.downloads.version_zip, lifecycle.visibility) with the token owner's access.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from ninja import Router, Schema, Status

from lifecycle import access, hooks, visibility
from lifecycle.api import problems
from lifecycle.api.problems import Problem
from lifecycle.api.raw import read_zip_body
from lifecycle.archives import read_archive
from lifecycle.downloads import version_zip
from lifecycle.models import AccessLevel, CurrentVersion, Environment, Module, ModuleVersion
from lifecycle.publishing import content_limits, publish
from lifecycle.request_values import parse_id

router = Router(tags=["modules"])

MAX_COMMENT_LENGTH = 2000  # As in the browser's publish form.
NO_ACCESS = "You have no access to any environment yet. Ask an administrator to add you to a group."

ZIP_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}
ZIP_ANSWER = {
    "responses": {
        200: {
            "description": "The files as a zip; the header Stageboard-Module-Version has its number.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
}


class HotfixRef(Schema):
    id: int
    environment: str


class PublishOut(Schema):
    module: str
    environment: str
    version: int
    created: bool
    previous_version: int | None
    tree_hash: str
    hotfix: HotfixRef | None
    message: str


def find_module(name: str) -> Module:
    module = Module.objects.select_related("application").filter(name=name).first()
    if module is None:
        raise Problem(404, "not_found", f"There is no module named {name!r}.")
    return module


def find_environment(name: str, user) -> Environment:
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        # Only the names the user may see: the others are not theirs to learn.
        names = ", ".join(e.name for e in access.visible_environments(user)) or "none you can view"
        raise Problem(404, "not_found", f"There is no environment named {name!r}; there are: {names}.")
    return environment


@router.post(
    "/{module_name}/environments/{environment_name}/versions",
    response={200: PublishOut, 201: PublishOut, **problems.responses(400, 403, 404, 409, 411, 413, 415)},
    url_name="publish",
    summary="Publish a zip as the module's new version",
    openapi_extra=ZIP_BODY,
)
def publish_version(
    request,
    response: HttpResponse,
    module_name: str,
    environment_name: str,
    comment: str = "",
    base_version: str | None = None,
):
    module = find_module(module_name)
    environment = find_environment(environment_name, request.user)
    # publish() checks this too; checking first spares reading a large body for nothing.
    access.require(request.user, environment, AccessLevel.PUBLISH)
    if len(comment) > MAX_COMMENT_LENGTH:
        raise Problem(400, "invalid_comment", f"A comment has at most {MAX_COMMENT_LENGTH} characters.")
    based_on = _base_version(base_version, module, environment)
    files = read_archive(read_zip_body(request), content_limits())
    result = publish(
        module,
        environment,
        files,
        user=request.user,
        comment=comment,
        based_on=based_on,
        check_stale=based_on is not None,
    )
    version = result.version
    hotfix = None
    if result.created and not environment.is_first():
        opened = hooks.hotfix_state().open_hotfixes([module.application_id], [environment.pk])
        if opened:
            hotfix = {"id": opened[module.application_id, environment.pk], "environment": environment.name}
    if result.created:
        message = f"Published {module.name} v{version.number} to {environment.name}."
        response["Location"] = reverse("api:version-archive", args=[module.name, version.number])
    else:
        message = f"No changes: the content is identical to v{version.number}; nothing was published."
    return Status(
        201 if result.created else 200,
        {
            "module": module.name,
            "environment": environment.name,
            "version": version.number,
            "created": result.created,
            "previous_version": result.previous.number if result.previous else None,
            "tree_hash": version.tree_hash,
            "hotfix": hotfix,
            "message": message,
        },
    )


@router.get(
    "/{module_name}/versions/{int:number}/archive",
    response=problems.responses(403, 404),
    url_name="version-archive",
    summary="Download a version as a zip",
    openapi_extra=ZIP_ANSWER,
)
def version_archive(request, module_name: str, number: int):
    module = find_module(module_name)
    if not access.levels_for(request.user):
        raise Problem(403, "forbidden", NO_ACCESS)
    # Which versions the user may see is lifecycle.visibility's rule; one they may not answers 404.
    return _zip_response(module, visibility.visible_version(request.user, module, number))


@router.get(
    "/{module_name}/environments/{environment_name}/archive",
    response=problems.responses(403, 404),
    url_name="environment-archive",
    summary="Download the version current in an environment",
    openapi_extra=ZIP_ANSWER,
)
def environment_archive(request, module_name: str, environment_name: str):
    module = find_module(module_name)
    environment = find_environment(environment_name, request.user)
    access.require(request.user, environment, AccessLevel.VIEW)
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    if current is None:
        raise Problem(404, "not_found", f"{module.name} has no version in {environment.name}.")
    return _zip_response(module, current.version)


def _zip_response(module: Module, version: ModuleVersion) -> HttpResponse:
    response = version_zip(module, version)
    # Lets a script publish its edit with ?base_version= and learn if someone published meanwhile.
    response["Stageboard-Module-Version"] = str(version.number)
    return response


def _base_version(raw: str | None, module: Module, environment: Environment) -> ModuleVersion | None:
    """The version the client's edit started from, refused at once (409) when it is no longer current."""
    if raw is None:
        return None
    number = parse_id(raw)
    if number is None:
        raise Problem(
            400, "invalid_base_version", f"base_version must be a version number, not {raw[:40]!r}."
        )
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    if current is None or current.version.number != number:
        now = f"v{current.version.number} is current there" if current else "it has no version there yet"
        raise Problem(
            409,
            "stale",
            f"Not published: your edit is based on {module.name} v{number}, but {now} in {environment.name}. "
            "Download the current version, apply your change to it and publish again.",
        )
    return current.version
