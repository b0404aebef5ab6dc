"""The htmx side of requests: one helper decides between a full page and a fragment."""

from django.http import HttpRequest
from django.utils.cache import patch_vary_headers
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


class VaryOnHtmxMiddleware:
    """Pages answer htmx with a fragment and browsers with the page, at one URL: say so in Vary.

    Without it, a browser's HTTP cache may hand a fragment to a full-page visit (Back after
    a pushed URL) or the page to htmx.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            patch_vary_headers(response, ("HX-Request",))
        return response
