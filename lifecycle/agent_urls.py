"""The agent protocol's URLs under /api/v1/agent/ (docs/agent.md): agent tokens only, each for its
own environment. config/api.py puts them before the ninja API's, in the same "api" namespace."""

from django.urls import path

from lifecycle import agent_api

urlpatterns = [
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
]
