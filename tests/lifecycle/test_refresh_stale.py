"""Refreshes that must not leave a page stale: each changes what a page shows, then refreshes the page
and compares it with a fresh one (lifecycle/refresh.py, lifecycle/revision.py)."""

import pytest
from django.urls import reverse

from tests.factories import released_application
from tests.lifecycle.test_refresh import apply, shown

pytestmark = pytest.mark.django_db(transaction=True)  # The revision moves when a change commits.
URL = reverse("lifecycle:pipeline")


def post(client, url, sent):
    return client.post(url, sent, headers={"HX-Request": "true"})


def refreshed(client, url, page):
    response = post(client, url, shown(page))
    return page if response.status_code == 204 else apply(page, response.content.decode())


def test_a_module_moved_to_another_application_leaves_the_row_of_the_one_it_left(
    client, viewer, environments
):
    shop, (_, cart), _ = released_application("Shop", environments, module_names=("Core", "Cart"))
    blog, _, _ = released_application("Blog", environments)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    cart.application = blog  # What the admin's module form may do.
    cart.save()
    assert shown(refreshed(client, URL, page)) == shown(client.get(URL).content.decode())


def test_a_module_moved_to_another_application_leaves_the_page_of_the_one_it_left(
    client, viewer, environments
):
    shop, (cart,), _ = released_application("Shop", environments)
    blog, _, _ = released_application("Blog", environments)
    url = reverse("lifecycle:application", args=[shop.pk])
    client.force_login(viewer)
    page = client.get(url).content.decode()
    cart.application = blog
    cart.save()
    response = post(client, url, shown(page))
    assert response.status_code == 200 and response["HX-Refresh"] == "true"  # Its module went away.
