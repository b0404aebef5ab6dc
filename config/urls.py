from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("lifecycle.api_urls")),
    path("profile/tokens/", include("lifecycle.token_urls")),
    path("", include("hotfixes.urls")),
    path("", include("lifecycle.urls")),
]
