"""The audit page: filter the trail, page through it, export it as CSV."""

import csv
from datetime import datetime, time

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from lifecycle import access
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


def _filtered(params):
    events = AuditEvent.objects.all()
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
    page = Paginator(_filtered(params), 100).get_page(request.GET.get("page"))
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
        for event in _filtered(params).iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    event.at.isoformat(),
                    event.action,
                    event.username,
                    event.ip or "",
                    event.environment,
                    event.application,
                    _safe_cell(event.summary),
                    _safe_cell(str(event.before) if event.before is not None else ""),
                    _safe_cell(str(event.after) if event.after is not None else ""),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="stageboard-audit.csv"'
    return response


def _safe_cell(text):
    """Spreadsheets run cells starting with = + - @ as formulas; a leading quote keeps them text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
