"""Answering a request too large to read with a page that says so, instead of Django's bare 400.

Django refuses a form whose fields pass DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig, a
SuspiciousOperation), or that has more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields
(TooManyFieldsSent), wherever the form is first read, often in a middleware, and hands the error
to the 400 handler. This handler answers those cases 413 with the limits in words, and every
other bad request as Django does; under /api/ as a problem (lifecycle/api/problems.py).
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.shortcuts import render
from django.views import defaults

from lifecycle.api import problems
from lifecycle.archives import human_bytes


def bad_request(request, exception=None):
    if not isinstance(exception, RequestDataTooBig | TooManyFieldsSent):
        if request.path.startswith("/api/"):
            # The API answers JSON, errors included, even for a body Django could not parse.
            message = "The request could not be read (a malformed body or header); nothing was done."
            return problems.error_for(request, 400, "bad_request", message)
        return defaults.bad_request(request, exception)
    message = _too_large(exception)
    if request.path.startswith("/api/"):
        return problems.error_for(request, 413, "request_too_large", message)
    # The page renders without the session's user when the middleware never got that far.
    return render(request, "413.html", {"message": message}, status=413)


def _too_large(exception) -> str:
    if isinstance(exception, TooManyFieldsSent):
        return (
            f"The form sent has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields, the most "
            "Stageboard reads from one request, so nothing was saved."
        )
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    file_limit = settings.MODULE_MAX_FILE_BYTES
    return (
        f"The form sent is over the {human_bytes(limit)} Stageboard reads from one request, so nothing "
        f"was saved. A file in a module may hold at most {human_bytes(file_limit)}; upload a zip of the "
        "module to publish larger content."
    )
