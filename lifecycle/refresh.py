"""Conditional refresh of the grid: nothing when nothing changed, only the rows that did otherwise.

The page shows a revision token (`token`): the pipeline revision (lifecycle.revision) read
before anything else, plus the minute when some environment shown delivers (agents'
"seen 2 minutes ago" and online/offline move with time alone, with no write to bump on).
Each refreshable part of the grid (`<thead id="grid-head">`, `<tr id="row-N">`) carries
`data-hash`, a digest of its own markup, stamped after rendering (`stamp`).

The refresh is a POST of the token shown and the hashes shown (rows, in order), to the URL of
the page with its filters. It is answered:
- 204, no body, when the token is still the current one: the session, the user and one row read;
- otherwise the grid is rendered as for a full page and only its parts whose hash differs from
  the one sent come back, as out-of-band swaps, with the new token;
- the whole grid (HX-Retarget/HX-Reswap) when the rows themselves differ (an application added,
  renamed, or entering or leaving a filter), which out-of-band swaps of existing rows cannot say.

POST, not GET: 500 rows' hashes would pass the 4 KB request line gunicorn accepts.
"""

from __future__ import annotations

import hashlib
import re
import time

from django.http import HttpResponse

from lifecycle import revision

# A refreshable part: the grid's head, or one application's row. Neither holds another one.
# On an application's page: its deploy links, the head of its modules table and each module's row.
PART_IDS = r"grid-head|row-\d+|deploy-links|modules-head|module-\d+"
PART = re.compile(rf'<(thead|tr|nav)(?=[^>]*\sid="({PART_IDS})")([^>]*>.*?</\1>)', re.S)
HASH = re.compile(r' data-hash="([0-9a-f]*)"')
TOKEN_FIELD = "revision"
PARTS_FIELD = "parts"


def token(value: int, environments) -> str:
    """The token of a page built at revision `value` (read before the page's other queries)."""
    if any(environment.delivery != "record" for environment in environments):
        return f"{value}.{_minute()}"
    return str(value)


def _minute() -> int:
    return int(time.time() // 60)


def unchanged(request) -> bool:
    """Whether the token the page sent is still current: one query, whatever the pipeline's size."""
    sent = request.POST.get(TOKEN_FIELD, "")
    value = revision.current()
    expected = f"{value}.{_minute()}" if "." in sent else str(value)
    return sent == expected


def no_content() -> HttpResponse:
    response = HttpResponse(status=204)
    del response["Content-Type"]  # Nothing to type: a few bytes less on every idle tab's poll.
    return response


def _digest(markup: str) -> str:
    return hashlib.blake2b(markup.encode(), digest_size=8).hexdigest()


def parts(html: str) -> list[tuple[str, str, str]]:
    """(id, hash, markup) of each refreshable part of rendered, stamped HTML, in order."""
    found = []
    for match in PART.finditer(html):
        markup = match.group(0)
        hashed = HASH.search(markup[: markup.index(">") + 1])
        found.append((match.group(2), hashed.group(1) if hashed else "", markup))
    return found


def stamp(html: str) -> str:
    """Give every refreshable part a data-hash of its markup (without any hash already in it)."""

    def with_hash(match: re.Match) -> str:
        tag, rest = match.group(1), HASH.sub("", match.group(3), count=1)
        end = rest.index(">")  # Last in the opening tag: markup read by position (tests, CSS) is unchanged.
        return f'<{tag}{rest[:end]} data-hash="{_digest(tag + rest)}"{rest[end:]}'

    return PART.sub(with_hash, html)


def sent_parts(request) -> list[tuple[str, str]]:
    """The (id, hash) pairs the page sent: "row-1:ab12…,row-2:…"."""
    pairs = []
    for item in request.POST.get(PARTS_FIELD, "").split(","):
        part_id, _, digest = item.partition(":")
        if part_id:
            pairs.append((part_id, digest))
    return pairs


def changed_parts(request, response: HttpResponse, target: str | None) -> HttpResponse:
    """Turn a rendered, stamped fragment into the answer to a refresh that found a new token."""
    html = response.content.decode()
    shown = sent_parts(request)
    now = parts(html)
    if [part_id for part_id, _ in shown] != [part_id for part_id, _, _ in now]:
        if target is None:  # A whole page (an application's): load it again.
            answer = HttpResponse(status=200)
            answer["HX-Refresh"] = "true"
            return answer
        response["HX-Retarget"] = target
        response["HX-Reswap"] = "outerHTML"
        return response
    before = dict(shown)
    swaps = []
    for part_id, digest, markup in now:
        if before.get(part_id) != digest:
            # <template>: a lone <tr> or <thead> would be dropped by the HTML parser.
            opening = markup.index(">")
            swaps.append(f'<template>{markup[:opening]} hx-swap-oob="true"{markup[opening:]}</template>')
    new_token = re.search(r'<span id="[\w-]+-revision" data-revision="([^"]*)"', html)
    if new_token:
        swaps.append(f'<template>{new_token.group(0)} hx-swap-oob="true" hidden></span></template>')
    answer = HttpResponse("".join(swaps), content_type=response.get("Content-Type"))
    return answer
