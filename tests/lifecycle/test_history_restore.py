"""The Back button after a pushed URL: htmx asks the server for the page again, and gets all of it."""

import pytest
from django.urls import reverse

from tests.factories import released_application

pytestmark = pytest.mark.django_db
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


@pytest.mark.parametrize(
    "url",
    [reverse("lifecycle:pipeline"), reverse("lifecycle:deployments"), reverse("hotfixes:list")],
)
def test_a_history_restore_gets_the_whole_page(client, release_manager, environments, url):
    released_application("Shop", environments)
    client.force_login(release_manager)
    fragment = client.get(url, {"q": "Sh"}, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    # htmx swaps a restore into <body>: a fragment there would leave no header and no filters.
    page = client.get(url, {"q": "Sh"}, headers=RESTORE).content.decode()
    assert page.lstrip().startswith("<!doctype html>")
    assert '<header class="topbar">' in page


def test_the_grid_brings_its_show_filter_without_an_out_of_band_swap(client, release_manager, environments):
    """An out-of-band element in a restored page would be taken out of it by htmx."""
    released_application("Shop", environments)
    client.force_login(release_manager)
    for headers in ({}, {"HX-Request": "true"}, RESTORE):
        response = client.get(reverse("lifecycle:pipeline"), {"show": "hotfixes"}, headers=headers)
        page = response.content.decode()
        assert "hx-swap-oob" not in page
        assert page.count('<input type="hidden" name="show" value="hotfixes" form="filters">') == 1


def test_pages_and_fragments_at_one_url_vary_on_hx_request(client, viewer):
    client.force_login(viewer)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(reverse("lifecycle:pipeline"), headers=headers)
        assert "HX-Request" in response["Vary"]
