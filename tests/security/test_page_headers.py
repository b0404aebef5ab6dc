"""Every HTML answer carries the Content-Security-Policy and X-Frame-Options headers, error pages too.

Found by attacking as an outsider after issue 9: the 413 page for a form over the request limit
(and the 400 for a NUL character) was answered by a middleware that sits outside django-csp and
the clickjacking middleware, so it was the one HTML page without either header.
"""

from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.models import Deployment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (module,), tag = released_application("Shop", environments, module_names=("Cart",))
    publish_files(module, pre, {"main.py": "hotfix\n"})
    Deployment.objects.create(source=dev, target=qa, started_by=release_manager, started_at=tag.created_at)
    return application, module, tag


def _pages(application, module, tag, environments):
    dev, qa, pre, _ = environments
    hotfix = Hotfix.objects.get()
    sides = {"application": application.pk, "source": pre.pk, "target": qa.pk}
    return [
        reverse("lifecycle:pipeline"),
        reverse("lifecycle:application", args=[application.pk]),
        reverse("lifecycle:module", args=[module.pk, dev.pk]),
        reverse("lifecycle:editor", args=[module.pk, dev.pk]),
        reverse("lifecycle:deploy") + f"?source={dev.pk}&target={qa.pk}&application={application.pk}",
        reverse("lifecycle:deployments"),
        reverse("lifecycle:deployment", args=[Deployment.objects.get().pk]),
        reverse("lifecycle:rollback", args=[application.pk, tag.pk]),
        reverse("lifecycle:audit"),
        reverse("hotfixes:list"),
        reverse("hotfixes:hotfix", args=[hotfix.pk]),
        reverse("hotfixes:propagate", args=[hotfix.pk]),
        reverse("hotfixes:merge") + "?" + urlencode(sides),
        reverse("hotfixes:compare") + "?" + urlencode(sides),
        reverse("hotfixes:diff", args=[module.pk, 1, 2]),
        reverse("tokens:list"),
        reverse("admin:index"),
        "/no-such-page/",  # 404
        reverse("lifecycle:module", args=[module.pk, dev.pk]) + "?version=99",  # 404
        reverse("lifecycle:pipeline") + "?q=%00",  # 400: a NUL character
    ]


def _assert_protected(response, what):
    assert response.has_header("Content-Security-Policy"), f"{what} ({response.status_code}) has no CSP"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response.get("X-Frame-Options") == "DENY", f"{what} ({response.status_code}) can be framed"


def test_every_page_and_fragment(shop, environments, release_manager, client):
    client.force_login(release_manager)
    for url in _pages(*shop, environments):
        _assert_protected(client.get(url), url)
        _assert_protected(client.get(url, headers={"HX-Request": "true"}), f"{url} as a fragment")


def test_a_form_over_the_request_limit(shop, environments, release_manager, client):
    _, module, _ = shop
    client.force_login(release_manager)
    url = reverse("lifecycle:editor-save", args=[module.pk, environments[0].pk])
    too_large = b"content=" + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post(url, too_large, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    _assert_protected(response, "the 413 page")


def test_pages_without_a_login(db):
    anonymous = Client()
    _assert_protected(anonymous.get(reverse("login")), "the login page")
    _assert_protected(anonymous.get("/admin/login/"), "the admin's login page")
    _assert_protected(anonymous.post(reverse("login"), {"username": "x", "password": "y"}), "a failed login")
