"""The desired state of an environment: what its machines should run, as docs/agent.md says.

Read in a fixed number of queries whatever the number of applications and
modules: the current versions, the grid's reading of them (pipeline.build_rows,
for the version label the grid shows), the last deployment per application and
the generations. The ETag is the environment's state revision, which changes
in the transaction of every change to what should run there
(delivery/revisions.py): an unchanged poll compares it and reads nothing else.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Max

from lifecycle.models import Application, CurrentVersion, Environment, LiveApplication, ModuleChange
from lifecycle.pipeline import build_rows


def etag(environment: Environment) -> str:
    """The quoted ETag of the environment's desired state as last read (its pk and state revision)."""
    return f'"{environment.pk}-{environment.state_revision}"'


def desired_state(environment: Environment) -> dict:
    """The environment's desired state at `environment.state_revision` or later.

    The revision is the one the caller read, before this reads the state: a
    change committed in between makes the state newer than its revision, never
    older, so the agent's next poll (with the older ETag) fetches it again.
    """
    modules: dict[int, list[dict]] = defaultdict(list)
    applications: dict[int, Application] = {}
    for application_id, application_name, module_name, number, content in (
        CurrentVersion.objects.filter(environment=environment)
        .order_by("module__name")
        .values_list(
            "module__application_id",
            "module__application__name",
            "module__name",
            "version__number",
            "version__tree_hash",
        )
    ):
        applications.setdefault(application_id, Application(pk=application_id, name=application_name))
        modules[application_id].append({"name": module_name, "version": number, "tree_hash": content})
    # In the grid's order (Application.Meta.ordering).
    ordered = sorted(applications.values(), key=lambda app: (app.name.lower(), app.pk))
    labels = {row.application.pk: row.cells[0].label for row in build_rows(ordered, [environment])}
    # Deployments are numbered in the order they start: the highest that changed a module is the last.
    deployments = dict(
        ModuleChange.objects.filter(environment=environment, deployment__isnull=False)
        .values("module__application_id")
        .annotate(last=Max("deployment_id"))
        .values_list("module__application_id", "last")
    )
    generations = dict(
        LiveApplication.objects.filter(environment=environment).values_list(
            "application_id", "desired_generation"
        )
    )
    return {
        "environment": environment.name,
        "revision": environment.state_revision,
        "applications": [
            {
                "name": application.name,
                "version": labels[application.pk],
                "deployment": deployments.get(application.pk),
                "generation": generations.get(application.pk, 0),
                "modules": modules[application.pk],
            }
            for application in ordered
        ],
    }
