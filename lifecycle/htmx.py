"""The htmx side of requests: one helper decides between a full page and a fragment."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def page_or_partial(request: HtmxHttpRequest, template: str, partial: str) -> str:
    """The partial for htmx requests that swap a region; the full page otherwise.

    Boosted requests and history restores (the Back button after a pushed URL, with no
    history cache) replace the whole body, so they get the whole page.
    """
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return f"{template}#{partial}"
    return template
