"""Every error of /api/v1 as an RFC 9457 problem: `application/problem+json`.

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "There is no module named 'Nope'.", "code": "not_found"}

`code` is stable (snake_case, listed in docs/api.md): scripts branch on it. `detail` is for a
person and may change. `title` is the HTTP status's phrase, as RFC 9457 asks of "about:blank".
A problem may carry more members where they help, e.g. `errors` (what failed validation) or
`findings`.

Code that maps a domain refusal raises `Problem(status, code, detail, **extra)`; everything
else is translated by the handlers `install(api)` puts on the NinjaAPI, and the few answers
ninja gives without an exception (405, unknown URLs) by `api_view` and `not_found`.
"""

from __future__ import annotations

import logging
from functools import wraps
from http import HTTPStatus

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError

from lifecycle.api.raw import ARCHIVE_STATUS, ApiError, error_response
from lifecycle.archives import ArchiveRejected
from lifecycle.publishing import StaleEdit

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="Stageboard"'
AGENT_PREFIX = "/api/v1/agent/"


class ProblemOut(Schema):
    """How a problem reads in the schema; any operation may also answer extra members."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str


def responses(*statuses: int) -> dict:
    """`response={200: ItemOut, **problems.responses(403, 404)}`: document the refusals an operation makes.

    401 (no valid token) and 422 (invalid parameters) apply to every operation and are added too.
    """
    return dict.fromkeys(sorted({401, 422, *statuses}), ProblemOut)


class Problem(Exception):
    """A refusal the API answers as a problem: `raise Problem(409, "stale", "…", findings=[…])`.

    `headers` are added to the response (e.g. Allow, WWW-Authenticate); any other keyword
    becomes a member of the problem document.
    """

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra
    ):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra
) -> HttpResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body["code"] = code
    body.update(extra)
    response = JsonResponse(body, status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_for(request, status: int, code: str, detail: str) -> HttpResponse:
    """An error answered before any view (a middleware, the 400 handler) on a path under /api/.

    The agent protocol keeps its own error shape (docs/agent.md); the rest of the API answers a problem.
    """
    if request.path.startswith(AGENT_PREFIX):
        return error_response(status, code, detail)
    return problem_response(status, code, detail)


def render(problem: Problem) -> HttpResponse:
    return problem_response(
        problem.status, problem.code, problem.detail, headers=problem.headers, **problem.extra
    )


def install(api) -> None:
    """Answer every exception a view of `api` raises, or ninja raises for it, with a problem."""

    @api.exception_handler(Problem)
    def problem(request, exc: Problem):
        return render(exc)

    @api.exception_handler(ApiError)
    def api_error(request, exc: ApiError):
        # The body readers shared with the agent API (lifecycle/api/raw.py) raise these.
        return problem_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @api.exception_handler(ValidationError)
    def invalid(request, exc: ValidationError):
        return problem_response(
            422,
            "invalid_request",
            "The request does not match the schema; `errors` says where.",
            errors=[_error(error) for error in exc.errors],
        )

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request, exc: AuthenticationError):
        # Ninja found no bearer token at all; a token that fails raises Problem (lifecycle/api/auth.py).
        return problem_response(
            401,
            "unauthorized",
            "Send a token in the header 'Authorization: Bearer <token>'. "
            "Create an API token on your API tokens page in Stageboard.",
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
        )

    @api.exception_handler(AuthorizationError)
    def unauthorized(request, exc: AuthorizationError):
        return problem_response(403, "forbidden", str(exc) or "You may not do this.")

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        # Ninja raises HttpError(400) for a body it cannot parse, from whatever the parser raised.
        if isinstance(exc.__cause__, Problem):
            return render(exc.__cause__)
        if exc.status_code == 400:
            return problem_response(400, "invalid_request", "The request body could not be read as JSON.")
        status = exc.status_code if 400 <= exc.status_code < 600 else 400
        return problem_response(status, _code_for(status), str(exc))

    @api.exception_handler(Http404)
    def not_found_error(request, exc: Http404):
        # A domain rule may answer "not found" (e.g. a version the user may not see).
        return problem_response(404, "not_found", str(exc) or "Not found.")

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc: PermissionDenied):
        return problem_response(403, "forbidden", str(exc) or "You may not do this.")

    @api.exception_handler(ArchiveRejected)
    def archive_rejected(request, exc: ArchiveRejected):
        return problem_response(ARCHIVE_STATUS.get(exc.code, 400), exc.code, str(exc))

    @api.exception_handler(StaleEdit)
    def stale(request, exc: StaleEdit):
        return problem_response(409, "stale", f"Not published: {exc}")

    @api.exception_handler(Exception)
    def server_error(request, exc: Exception):
        # A bug: log it with its traceback; the client learns nothing of the internals.
        logger.error("API request %s %s failed", request.method, request.path, exc_info=exc)
        return problem_response(500, "server_error", "Something went wrong on the server; it was logged.")


def _error(error: dict) -> dict:
    """One validation error, as pydantic describes it, without the input it refused."""
    return {
        "loc": [str(part) for part in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }


def _code_for(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "throttled"}.get(
        status, "invalid_request" if status < 500 else "server_error"
    )


def api_view(view):
    """One of ninja's URL views made fit for the API: no login redirect, no CSRF, 405 as a problem.

    Ninja answers a method no operation takes with a bare 405 and marks none of its views
    login_not_required (every page of the console needs a session otherwise).
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type") != CONTENT_TYPE:
            allowed = response.get("Allow", "")
            return problem_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {' or '.join(allowed.split(', '))}.",
                headers={"Allow": allowed},
            )
        return response

    return login_not_required(csrf_exempt(wrapper))


@login_not_required
@csrf_exempt
def not_found(request, path: str = ""):
    """Unknown URLs under /api/v1/ are a problem too, never the HTML 404 page or a login redirect."""
    return problem_response(404, "not_found", f"There is no API endpoint at {request.path}; see docs/api.md.")
