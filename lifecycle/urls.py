from django.urls import path

from lifecycle import views

app_name = "lifecycle"

module = "modules/<int:module_id>/in/<int:environment_id>/"

urlpatterns = [
    path("", views.pipeline, name="pipeline"),
    path("applications/<int:application_id>/", views.application_detail, name="application"),
    path(module, views.module_detail, name="module"),
    path(module + "versions/<int:number>/download", views.module_download, name="module-download"),
    path(module + "upload", views.module_upload, name="module-upload"),
    path(module + "edit/", views.editor, name="editor"),
    path(module + "edit/save", views.editor_save, name="editor-save"),
    path(module + "edit/add", views.editor_add, name="editor-add"),
    path(module + "edit/rename", views.editor_rename, name="editor-rename"),
    path(module + "edit/delete", views.editor_delete, name="editor-delete"),
    path(module + "edit/discard", views.editor_discard, name="editor-discard"),
    path(module + "edit/publish", views.editor_publish, name="editor-publish"),
]
