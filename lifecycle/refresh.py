"""Conditional refresh of the grid: nothing when nothing changed, only the rows that did otherwise.

The page shows a revision token (`token`): the pipeline revision (lifecycle.revision) read
before anything else and, when some environment shown has agents, which agents are online
(they go offline with time alone, with no write to bump on) and the minute (the column heads say
"seen 2 minutes ago"). Each refreshable part of the grid (`<thead id="grid-head">`,
`<tr id="row-N">`, `<nav id="grid-pages">`) carries `data-hash`, a digest of its own markup, stamped
after rendering (`stamp`).

The refresh is a POST of the token shown and the hashes shown (rows, in order), to the URL of
the page with its filters. It is answered (`Check`):
- 204, no body, when the token is still the current one: the session, the user and one row read
  (two when agents are shown);
- when the pipeline changed since, but only some applications' rows (the revision's
  `PipelineChange` records say which): those rows among the ones shown, and the heads, are
  rendered again, and those whose hash differs come back as out-of-band swaps with the new token.
  A tab costs one row's rendering per change, not its page's;
- when anything else changed (an environment, an access, an agent going offline, an application
  added or renamed, a page older than the records kept), or the page is filtered (a change may
  bring a row in or take one out), the grid is rendered as for a full page and only its parts
  whose hash differs come back;
- the whole grid (HX-Retarget/HX-Reswap) when the rows themselves differ (an application added,
  renamed, or entering or leaving a filter), which out-of-band swaps of existing rows cannot say.

POST, not GET: 500 rows' hashes would pass the 4 KB request line gunicorn accepts.
"""

from __future__ import annotations

import hashlib
import re
import time

from django.http import HttpResponse
from django.utils import timezone

from lifecycle import access, revision
from lifecycle.delivery.live import agents_online
from lifecycle.models import Delivery

# A refreshable part: the grid's head, one application's row, or its pages (their count moves with
# applications added on a later page, no row shown changing). None holds another one.
# On an application's page: its deploy links, the head of its modules table and each module's row.
PART_IDS = r"grid-head|row-\d+|grid-pages|deploy-links|modules-head|module-\d+"
PART = re.compile(rf'<(thead|tr|nav)(?=[^>]*\sid="({PART_IDS})")([^>]*>.*?</\1>)', re.S)
HASH = re.compile(r' data-hash="([0-9a-f]*)"')
TOKEN_FIELD = "revision"
PARTS_FIELD = "parts"


def token(value: int, environments, agents: str = "") -> str:
    """The token of a page built at revision `value` (read before the page's other queries).

    `agents`: who was online as a refresh read it (`Check.agents`); else read now. Either way before
    the rows, as the revision: an agent going offline after it shows under the next token, never
    under this one.
    """
    if any(environment.delivery == Delivery.AGENT for environment in environments):
        return f"{value}.{agents or _agents(environment.pk for environment in environments)}"
    return str(value)


def _agents(environment_ids) -> str:
    """Which of these environments have an agent online, and the minute: "<digest>.<minute>".

    Only those the viewer sees: a digest of a few small ids is soon guessed, and would tell them
    which environments they cannot see have agents, and when those go offline.
    """
    online = ",".join(str(pk) for pk in sorted(agents_online(timezone.now()) & set(environment_ids)))
    return f"{hashlib.blake2b(online.encode(), digest_size=4).hexdigest()}.{int(time.time() // 60)}"


class Check:
    """What a refresh sent, against the pipeline now: read before anything else of the page."""

    def __init__(self, request) -> None:
        self.sent = request.POST.get(TOKEN_FIELD, "")
        self.value = revision.current()
        shown_value, with_agents, self.sent_agents = self.sent.partition(".")
        self.shown_value = int(shown_value) if re.fullmatch(r"[0-9]{1,18}", shown_value) else None
        self.agents = _agents(access.levels_for(request.user)) if with_agents else ""
        self.token = f"{self.value}.{self.agents}" if with_agents else str(self.value)

    @property
    def unchanged(self) -> bool:
        return self.sent == self.token

    @property
    def minute_moved(self) -> bool:
        return self.sent_agents != self.agents

    def changed_applications(self) -> set[int] | None:
        """The applications whose rows changed since the page's revision; None: compare everything."""
        if self.shown_value is None:
            return None
        if self.sent_agents.partition(".")[0] != self.agents.partition(".")[0]:
            return None  # An agent went online or offline: every cell of its environment may show it.
        return revision.changed_since(self.shown_value, self.value)


def unchanged(request) -> bool:
    """Whether the token the page sent is still current: one query, whatever the pipeline's size."""
    return Check(request).unchanged


def no_content() -> HttpResponse:
    response = HttpResponse(status=204)
    del response["Content-Type"]  # Nothing to type: a few bytes less on every idle tab's poll.
    return response


# Headers that govern a document, its content or what it loads: a 204 has no body, and the browser
# keeps the page it shows, so they say nothing there. Content-Length is one a 204 must not carry
# (RFC 9110, 8.6); Vary concerns caches, which keep no answer to a POST.
NO_CONTENT_NEEDS_NOT = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Content-Length",
    "Vary",
)


class NoContentMiddleware:
    """Outermost: strip a 204's headers to the few it needs, so an idle tab's poll is ~150 bytes.

    Every other answer keeps every header (docs/security.md).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 204:
            for header in NO_CONTENT_NEEDS_NOT:
                if header in response:
                    del response[header]
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


def shown_rows(request) -> list[int]:
    """The ids of the applications whose rows the page sent ("row-<id>")."""
    return [int(part[4:]) for part, _ in sent_parts(request) if re.fullmatch(r"row-[0-9]{1,18}", part)]


def changed_only(request, html: str, token_html: str) -> HttpResponse:
    """The answer of a refresh that rendered only some of the page's parts (stamped `html`).

    Parts the page does not show are left out: this path never adds or removes a part.
    """
    before = dict(sent_parts(request))
    swaps = [
        _swap(markup) for part_id, digest, markup in parts(html) if before.get(part_id, digest) != digest
    ]
    swaps.append(_token_swap(token_html))
    return HttpResponse("".join(swaps))


def _swap(markup: str) -> str:
    # <template>: a lone <tr> or <thead> would be dropped by the HTML parser.
    opening = markup.index(">")
    return f'<template>{markup[:opening]} hx-swap-oob="true"{markup[opening:]}</template>'


def _token_swap(token_html: str) -> str:
    return f'<template>{token_html} hx-swap-oob="true" hidden></span></template>'


def token_span(span_id: str, value: str) -> str:
    """The opening of the hidden span that carries a page's token (templates print the same)."""
    return f'<span id="{span_id}" data-revision="{value}"'


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
            swaps.append(_swap(markup))
    new_token = re.search(r'<span id="[\w-]+-revision" data-revision="([^"]*)"', html)
    if new_token:
        swaps.append(_token_swap(new_token.group(0)))
    answer = HttpResponse("".join(swaps), content_type=response.get("Content-Type"))
    return answer
