"""The htmx side of requests: one helper decides between a full page and a fragment."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def page_or_partial(request: HtmxHttpRequest, template: str, partial: str) -> str:
    """The partial for htmx requests that swap a region; the full page otherwise (boosted included)."""
    if request.htmx and not request.htmx.boosted:
        return f"{template}#{partial}"
    return template
