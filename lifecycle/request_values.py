"""Reading ids and text from requests safely, and refusing what no page accepts."""

from django.http import HttpResponseBadRequest

MAX_ID_DIGITS = 18  # Fits a 64-bit primary key.


def parse_id(value) -> int | None:
    """A positive integer id from a request value, or None. Only ASCII digits: '²'.isdigit() is True."""
    if (
        not isinstance(value, str)
        or not (0 < len(value) <= MAX_ID_DIGITS)
        or not (value.isascii() and value.isdigit())
    ):
        return None
    return int(value) or None


class RefuseNulMiddleware:
    """Answer 400 to any request whose path, query or form carries a NUL character.

    No name, path or text in Stageboard may contain one, and PostgreSQL cannot
    store one: refusing it here keeps every view from answering a 500.
    """

    MESSAGE = "The request contains a NUL character, which Stageboard never accepts. Nothing was done."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_nul(request):
            if request.path.startswith("/api/"):
                from lifecycle.api import problems  # The API's own module imports this one.

                return problems.error_for(request, 400, "invalid_characters", self.MESSAGE)
            return HttpResponseBadRequest(self.MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _has_nul(request):
        if "\x00" in request.path:
            return True
        sources = [request.GET, request.POST] if request.method == "POST" else [request.GET]
        for data in sources:
            for key, values in data.lists():
                if "\x00" in key or any("\x00" in value for value in values if isinstance(value, str)):
                    return True
        return False
