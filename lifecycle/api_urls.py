from django.urls import path, re_path

from lifecycle import agent_api, api

app_name = "api"

urlpatterns = [
    path(
        "modules/<str:module_name>/environments/<str:environment_name>/versions",
        api.publish_version,
        name="publish",
    ),
    path(
        "modules/<str:module_name>/environments/<str:environment_name>/archive",
        api.environment_archive,
        name="environment-archive",
    ),
    path(
        "modules/<str:module_name>/versions/<int:number>/archive", api.version_archive, name="version-archive"
    ),
    path("applications/<str:application_name>", api.application_state, name="application"),
    # The agent protocol (docs/agent.md): agent tokens only, each for its own environment.
    path("agent/state", agent_api.state, name="agent-state"),
    path(
        "agent/modules/<str:module_name>/versions/<int:number>/manifest",
        agent_api.manifest,
        name="agent-manifest",
    ),
    path(
        "agent/modules/<str:module_name>/versions/<int:number>/archive",
        agent_api.archive,
        name="agent-archive",
    ),
    path("agent/reports", agent_api.report, name="agent-reports"),
    path("agent/drift/<str:module_name>", agent_api.drift, name="agent-drift"),
    path("agent/deliveries/<int:deployment_id>", agent_api.delivery, name="agent-delivery"),
    # Last: anything else under /api/v1/ is a JSON 404, not the console's HTML page.
    re_path(r"^(?P<path>.*)$", api.not_found, name="not-found"),
]
