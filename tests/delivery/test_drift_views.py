"""The drift page: the diff from the deployed version, the two actions as forms, and their refusals."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.models import AccessLevel, Drift, ModuleVersion
from tests.delivery.test_drift import PATCHED, PNG, counts, found
from tests.delivery.test_drift import shop as shop  # noqa: F401  (a fixture)
from tests.factories import make_user, publish_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def drift(shop):  # noqa: F811
    _, cart, production = shop
    publish_files(cart, production, {"main.py": "# Shop-Cart\nprint('hello')\n", "same.txt": "unchanged\n"})
    return found(
        cart,
        production,
        {"main.py": PATCHED, "same.txt": "unchanged\n", "static/logo.png": PNG, "added.py": "x"},
    )


def page(client, drift):
    return client.get(reverse("hotfixes:drift", args=[drift.pk]))


def forms(html, drift):
    """The actions the page offers, as forms that post with a CSRF token."""
    found = re.findall(
        rf'<form method="post" action="/hotfixes/drift/{drift.pk}/(\w+)">\s*<input type="hidden" '
        r'name="csrfmiddlewaretoken"',
        html,
    )
    return found


def text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_page_shows_the_diff_from_the_deployed_version(client, release_manager, drift):
    client.force_login(release_manager)
    response = page(client, drift)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'data-path="([^"]+)"', html) == [
        "added.py",
        "main.py",
        "static/logo.png",
    ]  # not same.txt
    assert '<span class="diff-add">+print(&#x27;patched on the server&#x27;)</span>' in html
    assert "Binary file added" in text(html)
    assert "3 files differ" in text(html)
    assert "Drift of Shop-Cart in Production ≠ open" in text(html)
    assert forms(html, drift) == ["adopt", "redeploy"]
    assert "Adopt as hotfix" in html and "Redeploy over the drift" in html


def test_a_viewer_sees_it_without_the_actions(client, viewer, drift):
    client.force_login(viewer)
    html = page(client, drift).content.decode()
    assert "Adopting or redeploying needs publish access in Production." in html
    assert forms(html, drift) == []


def test_it_is_hidden_from_those_who_cannot_see_its_environment(client, environments, drift):
    client.force_login(make_user("dev-only", {environments[0]: AccessLevel.FULL}))
    assert page(client, drift).status_code == 404
    assert client.post(reverse("hotfixes:drift-adopt", args=[drift.pk])).status_code == 404
    assert client.get(reverse("hotfixes:drift", args=[drift.pk + 1000])).status_code == 404


def test_adopting_from_the_page(client, release_manager, drift):
    client.force_login(release_manager)
    response = client.post(reverse("hotfixes:drift-adopt", args=[drift.pk]), {"comment": "From web-1"})
    assert response.status_code == 302 and response.url == reverse("hotfixes:drift", args=[drift.pk])
    html = client.get(response.url).content.decode()
    assert "Adopted the files found on Production&#x27;s machines as Shop-Cart v3 (a hotfix" in html
    hotfix = Hotfix.objects.open().get()
    assert f'href="{reverse("hotfixes:hotfix", args=[hotfix.pk])}"' in html
    assert "This drift of Shop-Cart in Production was adopted as hotfix v3 by release-manager" in html
    assert forms(html, drift) == []  # nothing left to do


def test_redeploying_from_the_page(client, release_manager, drift):
    client.force_login(release_manager)
    response = client.post(reverse("hotfixes:drift-redeploy", args=[drift.pk]))
    assert response.status_code == 302
    html = client.get(response.url).content.decode()
    assert "The agents of Production will apply Shop again" in html
    assert "was redeployed over by release-manager" in html


def test_the_second_tab_is_told_and_nothing_is_written_twice(release_manager, environments, drift):
    first, second = Client(), Client()
    first.force_login(release_manager)
    second.force_login(make_user("colleague", {e: AccessLevel.PUBLISH for e in environments}))
    assert page(second, drift).status_code == 200  # the second tab shows the forms
    assert first.post(reverse("hotfixes:drift-adopt", args=[drift.pk])).status_code == 302
    before = counts()
    for action in ("drift-adopt", "drift-redeploy"):
        response = second.post(reverse(f"hotfixes:{action}", args=[drift.pk]))
        assert response.status_code == 409
        assert "was adopted as hotfix v3 by release-manager" in response.content.decode()
        assert "nothing was done" in response.content.decode()
    assert counts() == before


def test_a_changed_environment_is_explained(client, release_manager, drift, shop):  # noqa: F811
    _, cart, production = shop
    publish_files(cart, production, {"main.py": "meanwhile"}, user=release_manager)
    client.force_login(release_manager)
    assert "is current in Production now, not v2" in text(page(client, drift).content.decode())
    before = counts()
    response = client.post(reverse("hotfixes:drift-adopt", args=[drift.pk]), {"comment": "kept"})
    assert response.status_code == 409
    assert (
        "release-manager made Shop-Cart v3 current in Production after this drift was found on v2: "
        "it was not adopted" in text(response.content.decode())
    )
    assert "kept</textarea>" in response.content.decode()  # the comment typed is not lost
    assert counts() == before


def test_a_comment_too_long_is_refused(client, release_manager, drift):
    client.force_login(release_manager)
    before = counts()
    response = client.post(reverse("hotfixes:drift-adopt", args=[drift.pk]), {"comment": "x" * 2001})
    assert response.status_code == 422
    assert "at most 2000 characters" in response.content.decode()
    assert counts() == before


def test_a_viewer_posting_is_refused(client, viewer, drift):
    client.force_login(viewer)
    before = counts()
    for action in ("drift-adopt", "drift-redeploy"):
        assert client.post(reverse(f"hotfixes:{action}", args=[drift.pk])).status_code == 403
    assert counts() == before
    assert Drift.objects.get().resolved_at is None


def test_the_actions_are_posts(client, release_manager, drift):
    client.force_login(release_manager)
    for action in ("drift-adopt", "drift-redeploy"):
        assert client.get(reverse(f"hotfixes:{action}", args=[drift.pk])).status_code == 405
    assert ModuleVersion.objects.count() == 2
