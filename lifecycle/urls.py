from django.urls import path

from lifecycle import audit_views, deploy_views, editor_views, history_views, views

app_name = "lifecycle"

module = "modules/<int:module_id>/in/<int:environment_id>/"

urlpatterns = [
    path("", views.pipeline, name="pipeline"),
    path("audit/", audit_views.audit_list, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit-export"),
    path("applications/<int:application_id>/", views.application_detail, name="application"),
    path(module, views.module_detail, name="module"),
    path(module + "versions/<int:number>/download", views.module_download, name="module-download"),
    path(module + "upload", views.module_upload, name="module-upload"),
    path(module + "edit/", editor_views.editor, name="editor"),
    path(module + "edit/save", editor_views.editor_save, name="editor-save"),
    path(module + "edit/add", editor_views.editor_add, name="editor-add"),
    path(module + "edit/rename", editor_views.editor_rename, name="editor-rename"),
    path(module + "edit/delete", editor_views.editor_delete, name="editor-delete"),
    path(module + "edit/discard", editor_views.editor_discard, name="editor-discard"),
    path(module + "edit/publish", editor_views.editor_publish, name="editor-publish"),
    path("deploy/", deploy_views.deploy, name="deploy"),
    path("deploy/run", deploy_views.deploy_run, name="deploy-run"),
    path("deploy/plans/save", deploy_views.plan_save, name="plan-save"),
    path("deploy/plans/<int:plan_id>/", deploy_views.plan_open, name="plan"),
    path("deploy/plans/<int:plan_id>/delete", deploy_views.plan_delete, name="plan-delete"),
    path(
        "applications/<int:application_id>/rollback/<int:tag_id>",
        deploy_views.rollback_view,
        name="rollback",
    ),
    path("deployments/", history_views.deployment_list, name="deployments"),
    path("deployments/<int:deployment_id>/", history_views.deployment_detail, name="deployment"),
    path("deployments/<int:deployment_id>/retry", history_views.deployment_retry, name="deployment-retry"),
    path(
        "applications/<int:application_id>/block/<int:environment_id>",
        history_views.block_application,
        name="block",
    ),
    path(
        "applications/<int:application_id>/unblock/<int:environment_id>",
        history_views.unblock_application,
        name="unblock",
    ),
]
