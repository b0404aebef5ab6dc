from django.urls import path

from hotfixes import compare_views, drift_views, views

app_name = "hotfixes"

urlpatterns = [
    path("hotfixes/", views.hotfix_list, name="list"),
    path("hotfixes/<int:hotfix_id>/", views.hotfix_detail, name="hotfix"),
    path("hotfixes/<int:hotfix_id>/solve", views.mark_solved, name="solve"),
    path("hotfixes/<int:hotfix_id>/propagate", views.propagate, name="propagate"),
    path("hotfixes/drift/<int:drift_id>/", drift_views.drift_detail, name="drift"),
    path("hotfixes/drift/<int:drift_id>/adopt", drift_views.drift_adopt, name="drift-adopt"),
    path("hotfixes/drift/<int:drift_id>/redeploy", drift_views.drift_redeploy, name="drift-redeploy"),
    path("merge/", views.merge, name="merge"),
    path("compare/", compare_views.compare, name="compare"),
    path("compare/file", compare_views.compare_file, name="compare-file"),
    path("modules/<int:module_id>/diff/<int:old>/<int:new>", compare_views.version_diff, name="diff"),
]
