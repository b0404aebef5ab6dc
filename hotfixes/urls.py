from django.urls import path

from hotfixes import compare_views, views

app_name = "hotfixes"

urlpatterns = [
    path("hotfixes/", views.hotfix_list, name="list"),
    path("hotfixes/<int:hotfix_id>/", views.hotfix_detail, name="hotfix"),
    path("hotfixes/<int:hotfix_id>/solve", views.mark_solved, name="solve"),
    path("hotfixes/<int:hotfix_id>/propagate", views.propagate, name="propagate"),
    path("merge/", views.merge, name="merge"),
    path("compare/", compare_views.compare, name="compare"),
    path("compare/file", compare_views.compare_file, name="compare-file"),
    path("modules/<int:module_id>/diff/<int:old>/<int:new>", compare_views.version_diff, name="diff"),
]
