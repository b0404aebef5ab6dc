"""Sending files: every download is an attachment named as RFC 6266 says, and kept in no cache.

Module names are free text, so a name is never pasted into a header: Django's
content_disposition_header quotes it, or sends it as `filename*` when it is not ASCII.
"""

from __future__ import annotations

import unicodedata

from django.http import HttpResponse
from django.utils.http import content_disposition_header

from lifecycle.archives import write_archive


def as_attachment(response: HttpResponse, filename: str) -> HttpResponse:
    """Mark `response` as a download of `filename` that no shared cache or browser cache keeps."""
    # A header cannot carry a control character at all (Django refuses it with an error).
    safe = "".join("_" if unicodedata.category(char) == "Cc" else char for char in filename)
    response["Content-Disposition"] = content_disposition_header(True, safe)
    # Module content may be confidential: never stored by a proxy, nor by the browser.
    response["Cache-Control"] = "private, no-store"
    return response


def version_zip(module, version) -> HttpResponse:
    """A module version's files as a zip download, `<module>-v<number>.zip`."""
    files = {row.path: bytes(row.blob.data) for row in version.files.select_related("blob")}
    response = HttpResponse(write_archive(files), content_type="application/zip")
    return as_attachment(response, f"{module.name}-v{version.number}.zip")
