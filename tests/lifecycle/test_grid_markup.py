"""What the grid and the application page offer: dialog links, deploy arrows, their words."""

import re

import pytest
from django.urls import reverse

from lifecycle.models import Deployment
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db
GRID = reverse("lifecycle:pipeline")


def application_url(application):
    return reverse("lifecycle:application", args=[application.pk])


def dialog_links(page):
    """The opening tags of every element that loads into the dialog."""
    return [tag for tag in re.findall(r"<a\b[^>]*>", page) if 'hx-target="#dialog-body"' in tag]


def arrows(page):
    """The grid's deploy arrows, by their accessible text."""
    return re.findall(r'<span class="visually-hidden"> (Deploy [^<]+)</span></a>', page)


@pytest.fixture
def shop(environments):
    """Shop 0.3 everywhere, with one module changed in Development and two in Quality Assurance."""
    application, (cart, catalog), _ = released_application("Shop", environments, module_names=("Cart", "Cat"))
    publish_files(cart, environments[0], {"main.py": "dev work"})
    publish_files(cart, environments[1], {"main.py": "qa fix"})
    publish_files(catalog, environments[1], {"main.py": "qa fix"})
    return application


def test_it_swaps_dialog_content_inside_the_dialog_body(client, release_manager, shop):
    """The arrows sit in #grid, whose hx-swap="outerHTML" would otherwise replace #dialog-body itself."""
    client.force_login(release_manager)
    for url in (GRID, application_url(shop)):
        links = dialog_links(client.get(url).content.decode())
        assert links
        assert all('hx-swap="innerHTML"' in link for link in links), links


def test_it_says_how_many_modules_differ_in_good_english(client, release_manager, shop):
    client.force_login(release_manager)
    grid = client.get(GRID).content.decode()
    assert "Deploy Shop from Development to Quality Assurance (2 modules differ)" in arrows(grid)
    assert "Deploy Shop from Quality Assurance to Pre-Production (2 modules differ)" in arrows(grid)
    assert 'title="1 module differs between' not in grid
    page = client.get(application_url(shop)).content.decode()
    assert "(2 differ)" in page
    assert "differs)" not in page


def test_it_says_one_module_differs(client, release_manager, environments):
    application, (core,), _ = released_application("Solo", environments)
    publish_files(core, environments[0], {"main.py": "dev work"})
    client.force_login(release_manager)
    grid = client.get(GRID).content.decode()
    assert arrows(grid) == ["Deploy Solo from Development to Quality Assurance (1 module differs)"]
    assert 'title="1 module differs between Development and Quality Assurance: deploy"' in grid
    assert "(1 differs)" in client.get(application_url(application)).content.decode()


def test_it_offers_no_deploy_arrow_from_an_empty_environment(client, release_manager, environments):
    """Only Pre-Production holds the module: QA → Pre-Production differs, but QA has nothing to deploy."""
    application, (core,) = make_application("Fresh")
    publish_files(core, environments[2], {"main.py": "made in Pre-Production"})
    client.force_login(release_manager)
    grid = client.get(GRID).content.decode()
    assert arrows(grid) == ["Deploy Fresh from Pre-Production to Production (1 module differs)"]
    page = client.get(application_url(application)).content.decode()
    deploy_links = [link for link in dialog_links(page) if "/deploy/" in link]
    assert len(deploy_links) == 1
    assert f"source={environments[2].pk}&amp;target={environments[3].pk}" in deploy_links[0]
    assert 'Quality Assurance → Pre-Production <span class="small">(nothing to deploy)</span>' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"q": "zzz"}, "No applications match “zzz”."),
        ({"q": "zzz", "show": "differences"}, "No applications with differences match “zzz”."),
        ({"q": "zzz", "show": "hotfixes"}, "No applications with open hotfixes match “zzz”."),
        ({"q": "Sol", "show": "hotfixes"}, "No applications with open hotfixes match “Sol”."),
    ],
)
def test_it_names_every_filter_that_empties_the_grid(client, release_manager, environments, query, message):
    released_application("Solo", environments)
    client.force_login(release_manager)
    for headers in ({}, {"HX-Request": "true"}):
        page = client.get(GRID, query, headers=headers).content.decode()
        assert message in page


def test_it_says_no_applications_yet_when_there_are_none(client, release_manager):
    client.force_login(release_manager)
    assert "No applications yet." in client.get(GRID).content.decode()


def test_it_tells_tags_deployed_without_a_deployment_apart(client, release_manager, environments):
    """The demo loader deploys tags with no Deployment: the box must not say "Not deployed yet"."""
    application, _, _ = released_application("Solo", environments)
    assert not Deployment.objects.exists()
    client.force_login(release_manager)
    page = client.get(application_url(application)).content.decode()
    assert "Not deployed yet" not in page
    assert "No deployments by Tag &amp; Deploy yet." in page
    assert page.count("recorded without one") == 1

    fresh, (core,) = make_application("Fresh")
    publish_files(core, environments[0], {"main.py": "new"})
    page = client.get(application_url(fresh)).content.decode()
    assert "No deployments by Tag &amp; Deploy yet." in page
    assert "recorded without one" not in page
