from django.urls import path

from lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("", views.pipeline, name="pipeline"),
    path("applications/<int:application_id>/", views.application_detail, name="application"),
]
