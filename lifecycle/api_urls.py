from django.urls import path, re_path

from lifecycle import api

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
    # Last: anything else under /api/v1/ is a JSON 404, not the console's HTML page.
    re_path(r"^(?P<path>.*)$", api.not_found, name="not-found"),
]
