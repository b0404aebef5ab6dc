from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.http import require_GET

from config import api
from lifecycle.auth_views import ThrottledLoginView

# A request over DATA_UPLOAD_MAX_MEMORY_SIZE gets a 413 page that says so; other bad requests stay 400.
handler400 = "lifecycle.request_limits.bad_request"


@login_not_required
@require_GET
def favicon(request):
    # Browsers ask for /favicon.ico on every page whatever the <link rel="icon"> says.
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin logs in through the same throttled, audited login as the console.
    path("admin/login/", ThrottledLoginView.as_view()),
    path("admin/", admin.site.urls),
    # The agent protocol, the ninja API (with /api/v1/openapi.json), a problem 404 for the rest.
    path("api/v1/", include((api.urlpatterns, "api"))),
    path("profile/tokens/", include("lifecycle.token_urls")),
    path("", include("hotfixes.urls")),
    path("", include("lifecycle.urls")),
]
