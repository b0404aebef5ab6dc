"""The audit page: filter the trail, page through it, export it as CSV.

Both show only the rows `audit.visible_to` gives the reader.
"""

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, time

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from lifecycle import access, audit
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import AccessLevel, AuditEvent

FILTERS = ("user", "environment", "application", "action", "since", "until")


def _require_auditor(user):
    """Staff, and users with full access somewhere, read the trail."""
    if user.is_staff or AccessLevel.FULL in access.levels_for(user).values():
        return
    raise PermissionDenied("The audit trail is for administrators and users with full access.")


def _date(text, end=False):
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except (TypeError, ValueError):
        return None
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min))


def _filtered(user, params):
    events = audit.visible_to(user)
    if params.get("user"):
        events = events.filter(username__iexact=params["user"][:150])
    if params.get("environment"):
        events = events.filter(environment=params["environment"][:60])
    if params.get("application"):
        events = events.filter(application__icontains=params["application"][:100])
    if params.get("action") in AuditEvent.Action.values:
        events = events.filter(action=params["action"])
    if since := _date(params.get("since")):
        events = events.filter(at__gte=since)
    if until := _date(params.get("until"), end=True):
        events = events.filter(at__lte=until)
    return events


@login_required
@require_GET
def audit_list(request: HtmxHttpRequest):
    _require_auditor(request.user)
    params = {key: request.GET.get(key, "").strip() for key in FILTERS}
    page = Paginator(_filtered(request.user, params), 100).get_page(request.GET.get("page"))
    for event in page:
        event.changes = changes(event.before, event.after)
    context = {
        "page": page,
        "params": params,
        "actions": AuditEvent.Action.choices,
        "environments": access.visible_environments(request.user),
    }
    return render(request, page_or_partial(request, "lifecycle/audit.html", "events"), context)


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def audit_export(request: HtmxHttpRequest):
    _require_auditor(request.user)
    params = {key: request.GET.get(key, "").strip() for key in FILTERS}
    writer = csv.writer(_Echo())
    header = ["at", "action", "user", "ip", "environment", "application", "summary", "before", "after"]

    def rows():
        yield writer.writerow(header)
        for event in _filtered(request.user, params).iterator(chunk_size=2000):
            cells = [
                event.at.isoformat(),
                event.action,
                event.username,
                event.ip or "",
                event.environment,
                event.application,
                event.summary,
                _json(event.before),
                _json(event.after),
            ]
            yield writer.writerow([_safe_cell(cell) for cell in cells])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="stageboard-audit.csv"'
    return response


# Spreadsheets run a cell starting with one of these as a formula, a tab or carriage return included.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(text):
    """Every cell, whoever wrote it (a username, an environment's name): a leading quote keeps it text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _json(value):
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


# Blob and tree hashes: the first 12 characters tell them apart, as git's short hashes do.
_HASH = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass(frozen=True)
class Change:
    key: str
    before: str | None
    after: str | None


def changes(before, after) -> list[Change]:
    """The "before → after" of an event, readable: one line per key whose value changed."""
    records = [value for value in (before, after) if value is not None]
    if not records:
        return []
    if not all(isinstance(record, dict) for record in records):
        return [_change("", before, after)]
    before, after = before or {}, after or {}
    keys = list(before) + [key for key in after if key not in before]
    return [
        _change(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)
    ]


def _change(key, before, after) -> Change:
    return Change(key, _readable(before), _readable(after))


def _readable(value) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _HASH.sub(lambda match: match.group()[:12] + "…", text)
