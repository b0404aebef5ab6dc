"""The JSON API under /api/v1/: publish and download modules, read an application's state.

Every request authenticates with a personal token (`Authorization: Bearer
<token>`) and acts as the token's user, with that user's access in each
environment. Sessions are never consulted and no cookie is set, so there is
nothing for CSRF to protect: the views are CSRF-exempt, and marked
login_not_required because they answer 401 themselves. Every answer is JSON,
errors included: `{"error": {"code": ..., "message": ...}}` (see docs/api.md).
"""

from __future__ import annotations

import logging
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from lifecycle import access, hooks, tokens, visibility
from lifecycle.archives import ArchiveRejected, human_bytes, read_archive
from lifecycle.downloads import version_zip
from lifecycle.models import AccessLevel, Application, CurrentVersion, Environment, Module, ModuleVersion
from lifecycle.pipeline import attach_live_states, build_rows
from lifecycle.publishing import StaleEdit, content_limits, publish
from lifecycle.request_values import parse_id

logger = logging.getLogger(__name__)

ZIP_CONTENT_TYPES = {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
MAX_COMMENT_LENGTH = 2000  # As in the browser's publish form.
READ_CHUNK_BYTES = 64 * 1024
# Rejected archives are 400 Bad Request, except one that is simply too big.
ARCHIVE_STATUS = {"archive_too_large": 413}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def api_view(*methods: str, authenticate=None):
    """Allowed methods, token authentication and JSON errors for one API view.

    `authenticate(request)` checks the request's token (an ApiError 401 when it does not pass)
    and sets who or what the view acts for: by default the personal token's user, as
    request.user; the agent API (lifecycle/agent_api.py) passes its own.
    """
    authenticate = authenticate or _authenticate_user

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"{request.method} is not allowed here; use {' or '.join(methods)}.",
                        {"Allow": ", ".join(methods)},
                    )
                authenticate(request)
                return view(request, *args, **kwargs)
            except ApiError as error:
                return error_response(error.status, error.code, error.message, error.headers)
            except PermissionDenied as error:
                return error_response(403, "forbidden", str(error) or "You may not do this.")
            except Http404 as error:
                # A domain rule may answer "not found" (e.g. a version the user may not see): JSON too.
                return error_response(404, "not_found", str(error) or "Not found.")
            except ArchiveRejected as error:
                return error_response(ARCHIVE_STATUS.get(error.code, 400), error.code, str(error))
            except StaleEdit as error:
                return error_response(409, "stale", f"Not published: {error}")
            except Exception:
                # A bug: log it with its traceback, but still answer the client in JSON.
                logger.exception("API request %s %s failed", request.method, request.path)
                return error_response(
                    500, "server_error", "Something went wrong on the server; it was logged."
                )

        return wrapper

    return decorator


def bearer_token(request, where_to_get_one: str) -> str:
    """The token of the header 'Authorization: Bearer <token>', or a 401 saying how to send one."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(
            401,
            "unauthorized",
            f"Send a token in the header 'Authorization: Bearer <token>'. {where_to_get_one}",
            {"WWW-Authenticate": 'Bearer realm="Stageboard"'},
        )
    return raw.strip()


def _authenticate_user(request) -> None:
    request.user = _token_user(request)


def _token_user(request):
    raw = bearer_token(request, "Create an API token on your API tokens page in Stageboard.")
    user = tokens.authenticate(raw)
    if user is None:
        raise ApiError(
            401,
            "unauthorized",
            "The API token is not valid: it is mistyped, revoked, or its user is deactivated.",
            {"WWW-Authenticate": 'Bearer realm="Stageboard", error="invalid_token"'},
        )
    return user


def _module(name: str) -> Module:
    module = Module.objects.select_related("application").filter(name=name).first()
    if module is None:
        raise ApiError(404, "not_found", f"There is no module named {name!r}.")
    return module


def _environment(name: str, user) -> Environment:
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        # Only the names the user may see: the others are not theirs to learn.
        names = ", ".join(e.name for e in access.visible_environments(user)) or "none you can view"
        raise ApiError(404, "not_found", f"There is no environment named {name!r}; there are: {names}.")
    return environment


def _require_module_view(user) -> None:
    """Downloading a version by number needs view access to some environment, as every page does.

    Which versions it may download is lifecycle.visibility's rule; one it may not see answers 404.
    """
    if not access.levels_for(user):
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )


def _zip_response(module: Module, version: ModuleVersion) -> HttpResponse:
    response = version_zip(module, version)
    # Lets a script publish its edit with ?base_version= and learn if someone published meanwhile.
    response["Stageboard-Module-Version"] = str(version.number)
    return response


def _base_version(request, module: Module, environment: Environment) -> ModuleVersion | None:
    """The version the client's edit started from, refused at once (409) when it is no longer current."""
    raw = request.GET.get("base_version")
    if raw is None:
        return None
    number = parse_id(raw)
    if number is None:
        raise ApiError(
            400, "invalid_base_version", f"base_version must be a version number, not {raw[:40]!r}."
        )
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    if current is None or current.version.number != number:
        now = f"v{current.version.number} is current there" if current else "it has no version there yet"
        raise ApiError(
            409,
            "stale",
            f"Not published: your edit is based on {module.name} v{number}, but {now} in {environment.name}. "
            "Download the current version, apply your change to it and publish again.",
        )
    return current.version


def read_zip_body(request) -> bytes:
    """The request body, read from the stream with a hard bound (not request.body, which is capped lower)."""
    if request.content_type.lower() not in ZIP_CONTENT_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the zip itself as the body, with 'Content-Type: application/zip', not "
            f"{request.content_type!r} (curl: --data-binary @module.zip -H 'Content-Type: application/zip').",
        )
    limit = content_limits().max_archive_bytes
    too_large = ApiError(
        413,
        "archive_too_large",
        f"The zip is over the limit of {human_bytes(limit)}; nothing was published.",
    )
    return read_body(request, limit, too_large)


def read_body(request, limit: int, too_large: ApiError) -> bytes:
    """The request body, read from the stream, refused with `too_large` as soon as it passes `limit` bytes."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    stream = _body_stream(request)
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise too_large
    return b"".join(chunks)


def _body_stream(request):
    """Where the body can be read from, up to its end.

    Django reads at most Content-Length bytes, so a chunked body (no Content-Length) reads as
    empty. A server that de-chunks the body and ends the stream after it says so with
    `wsgi.input_terminated` (gunicorn does): read the server's stream then. Any other server
    would hand over the raw chunks, or block: ask for a Content-Length (411) instead.
    """
    if request.META.get("CONTENT_LENGTH"):
        return request
    if request.META.get("wsgi.input_terminated") and "wsgi.input" in request.META:
        return request.META["wsgi.input"]
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise ApiError(
            411,
            "length_required",
            "This server cannot read a chunked body; send the zip with a Content-Length "
            "(curl does with --data-binary @module.zip). Nothing was published.",
        )
    return request


@login_not_required
@csrf_exempt
@api_view("POST")
def publish_version(request, module_name: str, environment_name: str):
    module = _module(module_name)
    environment = _environment(environment_name, request.user)
    # publish() checks this too; checking first spares reading a large body for nothing.
    access.require(request.user, environment, AccessLevel.PUBLISH)
    comment = request.GET.get("comment", "")
    if len(comment) > MAX_COMMENT_LENGTH:
        raise ApiError(400, "invalid_comment", f"A comment has at most {MAX_COMMENT_LENGTH} characters.")
    based_on = _base_version(request, module, environment)
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
    else:
        message = f"No changes: the content is identical to v{version.number}; nothing was published."
    response = JsonResponse(
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
        status=201 if result.created else 200,
    )
    if result.created:
        response["Location"] = reverse("api:version-archive", args=[module.name, version.number])
    return response


@login_not_required
@csrf_exempt
@api_view("GET")
def version_archive(request, module_name: str, number: int):
    module = _module(module_name)
    _require_module_view(request.user)
    # A version the user may not see answers like a missing one: api_view turns the 404 into JSON.
    return _zip_response(module, visibility.visible_version(request.user, module, number))


@login_not_required
@csrf_exempt
@api_view("GET")
def environment_archive(request, module_name: str, environment_name: str):
    module = _module(module_name)
    environment = _environment(environment_name, request.user)
    access.require(request.user, environment, AccessLevel.VIEW)
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    if current is None:
        raise ApiError(404, "not_found", f"{module.name} has no version in {environment.name}.")
    return _zip_response(module, current.version)


@login_not_required
@csrf_exempt
@api_view("GET")
def application_state(request, application_name: str):
    environments = access.visible_environments(request.user)
    if not environments:
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )
    application = Application.objects.filter(name=application_name).first()
    if application is None:
        raise ApiError(404, "not_found", f"There is no application named {application_name!r}.")
    row = build_rows([application], environments)[0]
    attach_live_states([row], environments)
    names = dict(application.modules.values_list("pk", "name"))
    version_ids = {version_id for cell in row.cells for version_id in cell.modules.values()}
    numbers = dict(ModuleVersion.objects.filter(pk__in=version_ids).values_list("pk", "number"))
    return JsonResponse(
        {
            "application": application.name,
            "environments": [
                {
                    "name": cell.environment.name,
                    "position": cell.environment.position,
                    "is_production": cell.environment.is_production,
                    "version": cell.label,
                    "tag": cell.tag_number,
                    "plus": cell.has_plus,
                    "open_hotfix": cell.open_hotfix,
                    "modules": {
                        names[module_id]: numbers[version_id]
                        for module_id, version_id in sorted(cell.modules.items(), key=lambda m: names[m[0]])
                    },
                    # What the machines run (docs/rules.md, "Live state and drift"); "record" where
                    # the switch in Stageboard is the deployment.
                    "delivery": {
                        "state": cell.live.state,
                        "version": cell.live.version,
                        "reported_at": cell.live.reported_at.isoformat() if cell.live.reported_at else None,
                    },
                }
                for cell in row.cells
            ],
        }
    )


@login_not_required
@csrf_exempt
def not_found(request, path: str = ""):
    """Unknown API URLs answer JSON too, never the HTML 404 page or a login redirect."""
    return error_response(404, "not_found", f"There is no API endpoint at {request.path}; see docs/api.md.")
