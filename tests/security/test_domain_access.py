"""Access is checked inside the domain functions, so no page, API or command can skip it.

Each function is called directly, as a future API endpoint or command would, by a user whose
level is one short of what the action needs: it must refuse and write nothing.
"""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from hotfixes.merging import perform, prepare
from hotfixes.models import Hotfix, Merge
from hotfixes.propagation import mark_solved
from lifecycle.blocking import block, unblock
from lifecycle.models import AccessLevel, ApplicationBlock, Deployment, DeploymentPlan
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments):
    application, (module,), _ = released_application("Shop", environments)
    return application, module


def test_blocking_needs_full_access_in_the_domain(environments, shop, release_manager):
    application, _ = shop
    production = environments[3]
    deployer = make_user("deployer", {production: AccessLevel.DEPLOY})
    with pytest.raises(PermissionDenied):
        block(application, production, deployer, "Freeze")
    assert not ApplicationBlock.objects.exists()
    block(application, production, release_manager, "Freeze")
    with pytest.raises(PermissionDenied):
        unblock(application, production, deployer, "Thaw")
    assert ApplicationBlock.objects.get().unblocked_at is None


def test_solving_needs_full_access_in_the_domain(environments, shop):
    _, module = shop
    pre = environments[2]
    publish_files(module, pre, {"main.py": "fixed\n"})
    hotfix = Hotfix.objects.get()
    deployer = make_user("deployer", {e: AccessLevel.DEPLOY for e in environments})
    with pytest.raises(PermissionDenied):
        mark_solved(hotfix.pk, environments, user=deployer, confirm_incomplete=True)
    hotfix.refresh_from_db()
    assert hotfix.is_open


def test_merging_needs_to_see_the_source_in_the_domain(environments, shop):
    application, module = shop
    qa, pre = environments[1], environments[2]
    publish_files(module, pre, {"main.py": "fixed\n"})
    blind = make_user("blind", {qa: AccessLevel.FULL})
    prepared = prepare(application, pre, qa)
    with pytest.raises(Http404):  # an environment they cannot see is not confirmed to exist
        perform(prepared, user=blind, fingerprint=prepared.fingerprint)
    assert not Merge.objects.exists()


def test_the_deployment_page_names_a_plan_only_to_those_who_may_see_it(client, environments, release_manager):
    dev, qa = environments[0], environments[1]
    plan = DeploymentPlan.objects.create(
        name="Secret train", source=dev, target=qa, created_by=release_manager
    )
    deployment = Deployment.objects.create(
        source=dev,
        target=qa,
        plan=plan,
        started_by=release_manager,
        started_at=timezone.now(),
        status=Deployment.Status.FINISHED,
        finished_at=timezone.now(),
    )
    url = reverse("lifecycle:deployment", args=[deployment.pk])
    client.force_login(make_user("qa-only", {qa: AccessLevel.VIEW}))
    assert "Secret train" not in client.get(url).content.decode()
    client.force_login(release_manager)
    assert "Secret train" in client.get(url).content.decode()
