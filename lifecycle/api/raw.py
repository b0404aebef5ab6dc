"""The hand-written JSON views' machinery, kept for the agent API (lifecycle/agent_api.py).

The agent protocol (docs/agent.md) predates /api/v1 on django-ninja and keeps its own
contract: errors as `{"error": {"code": ..., "message": ...}}`, allowed methods and token
authentication checked by `api_view`. The body readers are shared with the ninja routers,
which turn an ApiError into a problem (lifecycle/api/problems.py).

No session or cookie is consulted, so there is nothing for CSRF to protect: the views are
CSRF-exempt, and marked login_not_required because they answer 401 themselves.
"""

from __future__ import annotations

import logging
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse

from lifecycle.archives import ArchiveRejected, human_bytes
from lifecycle.publishing import StaleEdit, content_limits

logger = logging.getLogger(__name__)

ZIP_CONTENT_TYPES = {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
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


def api_view(*methods: str, authenticate):
    """Allowed methods, token authentication and JSON errors for one API view.

    `authenticate(request)` checks the request's token (an ApiError 401 when it does not pass)
    and sets who or what the view acts for, as the agent API (lifecycle/agent_api.py) does.
    """

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
