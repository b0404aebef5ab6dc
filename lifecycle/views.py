from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from hotfixes.models import Hotfix, HotfixChange
from lifecycle import access
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import Application, ModuleChange, ModuleVersion
from lifecycle.pipeline import build_rows, hotfixed_modules

GRID_FILTERS = {"": "All", "differences": "With differences", "hotfixes": "With open hotfixes"}


def _environments_or_403(user):
    environments = access.visible_environments(user)
    if not environments:
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )
    return environments


@login_required
@require_GET
def pipeline(request: HtmxHttpRequest):
    environments = _environments_or_403(request.user)
    query = request.GET.get("q", "").strip()[:100]
    show = request.GET.get("show", "")
    if show not in GRID_FILTERS:
        show = ""
    applications = Application.objects.all()
    if query:
        applications = applications.filter(name__icontains=query)
    rows = build_rows(applications, environments)
    if show == "differences":
        rows = [row for row in rows if row.has_differences]
    elif show == "hotfixes":
        rows = [row for row in rows if row.has_open_hotfix]
    context = {
        "environments": environments,
        "rows": rows,
        "query": query,
        "show": show,
        "filters": GRID_FILTERS,
        "refresh_seconds": settings.GRID_REFRESH_SECONDS,
        "colspan": 2 * len(environments),
    }
    return render(request, page_or_partial(request, "lifecycle/pipeline.html", "grid"), context)


@login_required
@require_GET
def application_detail(request: HtmxHttpRequest, application_id: int):
    application = get_object_or_404(Application, pk=application_id)
    environments = _environments_or_403(request.user)
    row = build_rows([application], environments)[0]
    modules = list(application.modules.all())
    version_ids = {version_id for cell in row.cells for version_id in cell.modules.values()}
    numbers = dict(ModuleVersion.objects.filter(pk__in=version_ids).values_list("pk", "number"))
    red = hotfixed_modules(application, environments)
    module_rows = []
    for module in modules:
        entries = []
        for cell in row.cells:
            version_id = cell.modules.get(module.pk)
            entries.append(
                {
                    "number": numbers.get(version_id),
                    "changed": module.pk in cell.changed_modules and version_id is not None,
                    "hotfix": (cell.environment.pk, module.pk) in red,
                }
            )
        module_rows.append({"module": module, "entries": entries})
    context = {
        "application": application,
        "environments": environments,
        "row": row,
        "module_rows": module_rows,
        "tags": application.tags.select_related("environment", "created_by").order_by(
            "-major", "-minor", "-patch"
        ),
        "changes": ModuleChange.objects.filter(
            module__application=application, environment__in=environments
        ).select_related("module", "environment", "version", "previous_version", "user")[:25],
        "open_hotfixes": Hotfix.objects.open()
        .filter(application=application, environment__in=environments)
        .select_related("environment", "opened_by")
        .prefetch_related(
            Prefetch("changes", queryset=HotfixChange.objects.select_related("module", "version"))
        ),
    }
    return render(request, "lifecycle/application.html", context)
