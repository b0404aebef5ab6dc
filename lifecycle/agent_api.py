"""The agent API under /api/v1/agent/: what an environment's agents and webhook receiver may do.

docs/agent.md ("The protocol") is the contract. Every request authenticates
with an agent token (`Authorization: Bearer sba_…`), which acts for its one
environment and nobody else: it reads that environment's desired state,
manifests and archives, and writes its reports, drift uploads and webhook
answers. As in the rest of the API (lifecycle/api/raw.py, whose errors these views
share) no session or cookie is consulted, so the views are CSRF-exempt and
login_not_required, and every answer is JSON, errors included.

An unchanged poll of the desired state is the hot path, hundreds of agents
every few seconds: it reads the token row joined with its environment, whose
state revision is the ETag, and answers 304 without reading anything else.
"""

from __future__ import annotations

import json
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseNotModified, JsonResponse
from django.utils.http import parse_etags
from django.views.decorators.csrf import csrf_exempt

from lifecycle.api.raw import ApiError, api_view, bearer_token, read_body, read_zip_body
from lifecycle.archives import human_bytes, read_archive
from lifecycle.delivery import agent_tokens, desired, reports
from lifecycle.downloads import version_zip
from lifecycle.models import CurrentVersion
from lifecycle.publishing import content_limits

MAX_JSON_BYTES = 1024 * 1024  # A report of thousands of applications fits; docs/agent.md says so.
JSON_CONTENT_TYPES = {"application/json"}


def _authenticate_agent(request) -> None:
    raw = bearer_token(
        request, "Create an agent token with 'manage.py agent_token ENVIRONMENT' or in the admin."
    )
    token = agent_tokens.authenticate(raw)
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "The agent token is not valid: it is mistyped or revoked. Agent tokens start with 'sba_'.",
            {"WWW-Authenticate": 'Bearer realm="Stageboard", error="invalid_token"'},
        )
    if not token.environment.delivers:
        raise ApiError(
            403,
            "not_delivering",
            f"{token.environment.name} delivers nothing to machines any more (its delivery is "
            "'record'), so its agent tokens may do nothing.",
        )
    request.agent_token = token


def agent_view(*methods: str):
    """An agent API view: agent-token authentication, the API's JSON errors, and the agent's own."""

    def decorator(view):
        @wraps(view)
        def translated(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except reports.ReportRejected as error:
                raise ApiError(400, "invalid_report", f"{error} Nothing was recorded.") from None
            except reports.NotWaiting as error:
                raise ApiError(409, "not_waiting", str(error)) from None
            except reports.NotApplied as error:
                raise ApiError(409, "not_applied", str(error)) from None

        return login_not_required(
            csrf_exempt(api_view(*methods, authenticate=_authenticate_agent)(translated))
        )

    return decorator


def _read_json_body(request):
    """The request's JSON body, read from the stream up to MAX_JSON_BYTES (413 past it)."""
    if request.content_type.lower() not in JSON_CONTENT_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send JSON with 'Content-Type: application/json', not {request.content_type[:100]!r}.",
        )
    too_large = ApiError(
        413, "request_too_large", f"The body is over {human_bytes(MAX_JSON_BYTES)}; nothing was recorded."
    )
    body = read_body(request, MAX_JSON_BYTES, too_large)
    try:
        return json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        # ValueError: not JSON, not UTF-8, a key twice, NaN, or a number of thousands of digits.
        detail = str(error)[:200] if isinstance(error, json.JSONDecodeError | _DuplicateKey) else "unreadable"
        raise ApiError(
            400, "invalid_json", f"The body is not valid JSON ({detail}); nothing was recorded."
        ) from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs):
    unique = dict(pairs)
    if len(unique) < len(pairs):
        raise _DuplicateKey("a key is given twice in one object")
    return unique


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON value")


def _current(request, module_name: str, number: int | None = None) -> CurrentVersion:
    """The module's version current in the token's environment (and numbered `number`), else 404."""
    environment = request.agent_token.environment
    rows = CurrentVersion.objects.filter(environment=environment, module__name=module_name)
    if number is not None:
        rows = rows.filter(version__number=number)
    current = rows.select_related("module", "version").first()
    if current is None:
        # The same answer whether the module exists elsewhere or not at all: other environments are not ours.
        what = f"{module_name!r} v{number}" if number is not None else f"a module {module_name!r}"
        raise ApiError(404, "not_found", f"{environment.name} does not run {what}.")
    return current


def _same_etag(request, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weakly compared, as RFC 9110 says for it) or is '*'."""
    sent = parse_etags(request.headers.get("If-None-Match", ""))
    return "*" in sent or etag in {tag.removeprefix("W/") for tag in sent}


@agent_view("GET")
def state(request):
    environment = request.agent_token.environment
    etag = desired.etag(environment)
    if _same_etag(request, etag):
        response = HttpResponseNotModified()
    else:
        response = JsonResponse(desired.desired_state(environment))
    response["ETag"] = etag
    # Revalidated at every poll: a cache may keep it only to ask with If-None-Match.
    response["Cache-Control"] = "private, no-cache"
    return response


@agent_view("GET")
def manifest(request, module_name: str, number: int):
    current = _current(request, module_name, number)
    version = current.version
    files = version.files.order_by("path").values_list("path", "blob_id", "blob__size")
    return JsonResponse(
        {
            "module": current.module.name,
            "version": version.number,
            "tree_hash": version.tree_hash,
            "files": [{"path": path, "sha256": digest, "size": size} for path, digest, size in files],
        }
    )


@agent_view("GET")
def archive(request, module_name: str, number: int):
    current = _current(request, module_name, number)
    return version_zip(current.module, current.version)


@agent_view("POST")
def report(request):
    payload = _read_json_body(request)
    return JsonResponse(reports.record_report(request.agent_token, payload))


@agent_view("POST")
def drift(request, module_name: str):
    # Checked first: reading a large body for a module that does not run here would be for nothing.
    _current(request, module_name)
    files = read_archive(read_zip_body(request), content_limits())
    found = reports.record_drift(request.agent_token, module_name, files)
    if found is None:
        return JsonResponse(
            {
                "drift": None,
                "message": f"No drift: the files are those of the version deployed in "
                f"{request.agent_token.environment.name}; nothing was kept.",
            }
        )
    return JsonResponse({"drift": found.pk}, status=201)


@agent_view("POST")
def delivery(request, deployment_id: int):
    payload = _read_json_body(request)
    deployment = reports.record_delivery(request.agent_token, deployment_id, payload)
    return JsonResponse({"deployment": deployment.pk, "recorded": True})
