"""The deploy dialog's markup: each side's hotfix state, and what the deploy button needs."""

import re

import pytest
from django.urls import reverse

from lifecycle.models import Deployment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db
DEPLOY = reverse("lifecycle:deploy")
RUN = reverse("lifecycle:deploy-run")


def plan(client, source, target, application, htmx=False):
    query = {"source": source.pk, "target": target.pk, "application": application.pk}
    return client.get(DEPLOY, query, headers={"HX-Request": "true"} if htmx else {}).content.decode()


def version_cells(page):
    """The source's and the target's version cells of the plan's one application."""
    return re.findall(r'<td class="plan-version[^"]*"[^>]*>.*?</td>', page, re.S)


@pytest.fixture
def shop(environments, release_manager):
    """Shop 0.3 everywhere, with an open hotfix in Pre-Production."""
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[2], {"main.py": "fixed in Pre-Production"}, user=release_manager)
    return application, core


@pytest.mark.parametrize("htmx", [False, True])
def test_it_shows_the_sources_open_hotfix_red_and_labelled(client, release_manager, environments, shop, htmx):
    application, _ = shop
    client.force_login(release_manager)
    source, target = version_cells(plan(client, environments[2], environments[3], application, htmx))
    assert 'class="plan-version hotfix"' in source and '<span class="hotfix-label">hotfix</span>' in source
    assert "0.3+" in source
    assert "hotfix" not in target


def test_it_shows_the_targets_hotfix_and_needs_deploy_anyway(client, release_manager, environments, shop):
    application, core = shop
    publish_files(core, environments[1], {"main.py": "QA work"})
    client.force_login(release_manager)
    page = plan(client, environments[1], environments[2], application)
    source, target = version_cells(page)
    assert "hotfix" in source  # A publish into Quality Assurance opened a hotfix there too.
    assert 'class="plan-version hotfix"' in target and '<span class="hotfix-label">hotfix</span>' in target
    # The script disables the button while "Deploy anyway" is unticked; the markup leaves it enabled.
    assert re.search(r'<form [^>]*id="deploy-form" data-needs-confirmation', page)
    button = re.search(r'<button type="submit" class="primary" id="deploy-button"[^>]*>', page).group(0)
    assert "disabled" not in button
    assert 'name="deploy_anyway"' in page


def test_without_javascript_an_unconfirmed_deploy_is_refused(client, release_manager, environments, shop):
    application, core = shop
    publish_files(core, environments[1], {"main.py": "QA work"})
    client.force_login(release_manager)
    page = plan(client, environments[1], environments[2], application)
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page).group(1)
    data = {
        "source": environments[1].pk,
        "target": environments[2].pk,
        "application": application.pk,
        "fingerprint": fingerprint,
    }
    response = client.post(RUN, data)
    assert response.status_code == 409
    assert not Deployment.objects.exists()


def test_a_plan_without_undone_changes_needs_no_confirmation(client, release_manager, environments, shop):
    application, _ = shop
    client.force_login(release_manager)
    page = plan(client, environments[2], environments[3], application)
    assert "data-needs-confirmation" not in page
    assert 'id="deploy-button"' in page
