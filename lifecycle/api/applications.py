"""Applications: an application's state across the pipeline, as the grid shows it."""

from __future__ import annotations

from ninja import Router, Schema

from lifecycle import access
from lifecycle.api import problems
from lifecycle.api.modules import NO_ACCESS
from lifecycle.api.problems import Problem
from lifecycle.models import Application, ModuleVersion
from lifecycle.pipeline import attach_live_states, build_rows

router = Router(tags=["applications"])


class DeliveryOut(Schema):
    state: str
    version: str | None
    reported_at: str | None  # ISO 8601, as Python writes it: "2025-03-04T10:15:02.118000+00:00"


class EnvironmentStateOut(Schema):
    name: str
    position: int
    is_production: bool
    version: str
    tag: str | None
    plus: bool
    open_hotfix: bool
    modules: dict[str, int]
    delivery: DeliveryOut


class ApplicationStateOut(Schema):
    application: str
    environments: list[EnvironmentStateOut]


@router.get(
    "/{application_name}",
    response={200: ApplicationStateOut, **problems.responses(403, 404)},
    url_name="application",
    summary="An application's version and modules in each environment, and what its machines run",
)
def application_state(request, application_name: str):
    environments = access.visible_environments(request.user)
    if not environments:
        raise Problem(403, "forbidden", NO_ACCESS)
    application = Application.objects.filter(name=application_name).first()
    if application is None:
        raise Problem(404, "not_found", f"There is no application named {application_name!r}.")
    row = build_rows([application], environments)[0]
    attach_live_states([row], environments)
    names = dict(application.modules.values_list("pk", "name"))
    version_ids = {version_id for cell in row.cells for version_id in cell.modules.values()}
    numbers = dict(ModuleVersion.objects.filter(pk__in=version_ids).values_list("pk", "number"))
    return {
        "application": application.name,
        "environments": [
            {
                "name": cell.environment.name,
                "position": cell.environment.position,
                "is_production": cell.environment.is_production,
                "version": cell.label,
                "tag": cell.tag_number,
                "plus": cell.has_plus,
                "open_hotfix": cell.open_hotfix,
                "modules": {
                    names[module_id]: numbers[version_id]
                    for module_id, version_id in sorted(cell.modules.items(), key=lambda m: names[m[0]])
                },
                # What the machines run (docs/rules.md, "Live state and drift"); "record" where
                # the switch in Stageboard is the deployment.
                "delivery": {
                    "state": cell.live.state,
                    "version": cell.live.version,
                    "reported_at": cell.live.reported_at.isoformat() if cell.live.reported_at else None,
                },
            }
            for cell in row.cells
        ],
    }
