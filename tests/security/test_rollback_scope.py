"""Rollback returns an environment to content it ran before, and shows only tags the user may see.

Found by attacking as an outsider after issue 9: "Roll back" accepted any tag of the application
in any environment the user could deploy to. A Development-only deployer "rolled back" Development
to a tag made in Pre-Production and then downloaded the Pre-Production-only version it held; a
Production deployer could equally "roll back" Production to a Development tag that never passed
Quality Assurance, skipping Tag & Deploy.
"""

from types import SimpleNamespace

import pytest
from django.urls import reverse

from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import AccessLevel, ApplicationTag, CurrentVersion, Deployment
from lifecycle.rollback import RollbackError, rollback, rollback_validation
from lifecycle.tagging import tag_environment
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db

SECRET = "PRE-PRODUCTION ONLY secret fix"


@pytest.fixture
def world(environments):
    """Shop-Cart 0.3 (v1) everywhere; v2 hotfixed in Pre-Production, tagged 0.3.1 there, run in Production."""
    dev, qa, pre, prod = environments
    application, (module,), tag = released_application("Shop", environments, module_names=("Cart",))
    hidden = publish_files(module, pre, {"main.py": SECRET + "\n"})
    assert hidden.number == 2
    hotfix_tag = tag_environment(application, pre, "0.3.1", notes="Confidential: the outage fix")
    deploy_tag(hotfix_tag, prod)
    return SimpleNamespace(
        application=application,
        module=module,
        tag=tag,
        hotfix_tag=hotfix_tag,
        dev=dev,
        qa=qa,
        pre=pre,
        prod=prod,
    )


def _rollback_url(w, tag):
    return reverse("lifecycle:rollback", args=[w.application.pk, tag.pk])


def test_it_refuses_to_roll_development_back_to_a_tag_it_never_ran(world, release_manager):
    plan = rollback_validation(world.application, world.hotfix_tag, world.dev)
    assert [f.code for f in plan.findings if f.severity == "error"] == ["never_ran_here"]
    with pytest.raises(RollbackError, match="never ran"):
        rollback(
            world.application,
            world.hotfix_tag,
            world.dev,
            number=plan.number,
            user=release_manager,
            fingerprint=plan.fingerprint,
            deploy_anyway=True,
        )
    assert not Deployment.objects.exists()
    assert CurrentVersion.objects.get(environment=world.dev).version.number == 1


def test_a_development_deployer_cannot_pull_a_pre_production_version_into_development(world, client):
    user = make_user("dev-deployer", {world.dev: AccessLevel.FULL})
    client.force_login(user)
    url = _rollback_url(world, world.hotfix_tag)
    assert client.get(url).status_code == 404
    response = client.post(
        url, {"environment": world.dev.pk, "number": "0.4", "fingerprint": "x", "deploy_anyway": "on"}
    )
    assert response.status_code == 404
    assert not Deployment.objects.exists()
    download = reverse("lifecycle:module-download", args=[world.module.pk, world.dev.pk, 2])
    assert client.get(download).status_code == 404


def test_it_refuses_to_roll_production_forward_to_a_development_tag(world, client, release_manager):
    publish_files(world.module, world.dev, {"main.py": "unreleased work\n"})
    unreleased = tag_environment(world.application, world.dev, "0.4")
    client.force_login(release_manager)
    url = _rollback_url(world, unreleased)
    page = client.get(url, {"environment": world.prod.pk})
    assert page.status_code == 200
    assert "never ran" in page.content.decode()
    plan = page.context["validation"]
    form = {"environment": world.prod.pk, "number": "0.4.1", "fingerprint": plan.fingerprint}
    response = client.post(url, {**form, "deploy_anyway": "on"})
    assert response.status_code == 409
    assert not Deployment.objects.exists()
    assert CurrentVersion.objects.get(environment=world.prod).version.number == 2


def test_it_still_rolls_back_to_a_tag_that_ran_there(world, client, release_manager):
    client.force_login(release_manager)
    url = _rollback_url(world, world.tag)
    plan = client.get(url, {"environment": world.prod.pk}).context["validation"]
    assert not plan.has_errors
    form = {"environment": world.prod.pk, "number": plan.number, "fingerprint": plan.fingerprint}
    response = client.post(url, {**form, "deploy_anyway": "on"})
    assert response.status_code == 302
    assert CurrentVersion.objects.get(environment=world.prod).version.number == 1


def test_the_application_page_lists_only_tags_whose_versions_the_user_may_see(world, client):
    client.force_login(make_user("dev-viewer", {world.dev: AccessLevel.VIEW}))
    page = client.get(reverse("lifecycle:application", args=[world.application.pk])).content.decode()
    assert 'data-tag="0.3"' in page
    assert 'data-tag="0.3.1"' not in page
    assert "Confidential" not in page


def test_a_production_viewer_sees_the_hotfix_tag(world, client):
    client.force_login(make_user("prod-viewer", {world.dev: AccessLevel.VIEW, world.prod: AccessLevel.VIEW}))
    page = client.get(reverse("lifecycle:application", args=[world.application.pk])).content.decode()
    assert 'data-tag="0.3.1"' in page
    assert client.get(_rollback_url(world, world.hotfix_tag)).status_code == 200
    assert ApplicationTag.objects.count() == 2


def test_a_tag_whose_files_ran_where_the_user_sees_is_shown(world, client):
    """After a merge brought Quality Assurance exactly 0.3.1's files (under another version), its
    viewers see 0.3.1, as the grid does, and may roll back to it there."""
    publish_files(world.module, world.qa, {"main.py": SECRET + "\n"})
    client.force_login(make_user("qa-lead", {world.qa: AccessLevel.FULL}))
    page = client.get(reverse("lifecycle:application", args=[world.application.pk])).content.decode()
    assert 'data-tag="0.3.1"' in page
    assert client.get(_rollback_url(world, world.hotfix_tag)).status_code == 200
