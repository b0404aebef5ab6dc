"""Saved deployment plans: who sees, uses and deletes them, and the audit trail (issue 9, item 6)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from lifecycle.deploying.plans import PlanError, delete_plan, plan_for_deployment, save_plan
from lifecycle.deploying.validation import validate
from lifecycle.models import AccessLevel, AuditEvent, Deployment, DeploymentPlan
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db
RUN = reverse("lifecycle:deploy-run")


@pytest.fixture
def shop(environments):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "dev work"})
    return application


@pytest.fixture
def nightly(environments, shop, release_manager):
    dev, qa, _, _ = environments
    return save_plan(release_manager, dev, qa, [shop], name="Nightly", numbers={})


def open_url(plan):
    return reverse("lifecycle:plan", args=[plan.pk])


def delete_url(plan):
    return reverse("lifecycle:plan-delete", args=[plan.pk])


def test_a_user_who_cannot_see_the_source_gets_404_and_the_plan_is_kept(client, environments, nightly):
    qa = environments[1]
    deployer = make_user("qa-deployer", {qa: AccessLevel.DEPLOY})
    client.force_login(deployer)
    assert client.get(open_url(nightly)).status_code == 404
    response = client.post(delete_url(nightly))
    assert response.status_code == 404
    assert b"Nightly" not in response.content
    assert DeploymentPlan.objects.filter(pk=nightly.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PLAN_DELETED).exists()


def test_a_user_who_sees_no_environment_is_told_to_ask_an_administrator(client, outsider, nightly):
    client.force_login(outsider)
    assert client.get(open_url(nightly)).status_code == 403
    assert client.post(delete_url(nightly)).status_code == 403
    assert DeploymentPlan.objects.filter(pk=nightly.pk).exists()


def test_a_user_who_cannot_see_the_target_gets_404(client, environments, nightly):
    dev = environments[0]
    client.force_login(make_user("dev-only", {dev: AccessLevel.FULL}))
    assert client.get(open_url(nightly)).status_code == 404
    assert client.post(delete_url(nightly)).status_code == 404
    assert DeploymentPlan.objects.filter(pk=nightly.pk).exists()


def test_deleting_needs_deploy_on_the_target(client, environments, nightly):
    dev, qa, _, _ = environments
    client.force_login(make_user("looker", {dev: AccessLevel.FULL, qa: AccessLevel.PUBLISH}))
    assert client.get(open_url(nightly)).status_code == 302  # Visible: it opens.
    assert client.post(delete_url(nightly)).status_code == 403
    assert DeploymentPlan.objects.filter(pk=nightly.pk).exists()


def test_deleting_is_audited_with_the_real_actor(client, environments, nightly):
    dev, qa, _, _ = environments
    deployer = make_user("deployer", {dev: AccessLevel.VIEW, qa: AccessLevel.DEPLOY})
    client.force_login(deployer)
    assert client.post(delete_url(nightly)).status_code == 302
    assert not DeploymentPlan.objects.filter(pk=nightly.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.PLAN_DELETED)
    assert event.user == deployer and event.environment == qa.name and event.application == "Shop"
    assert event.summary == "Deleted the plan “Nightly” from Development to Quality Assurance"
    assert event.before["applications"] == ["Shop"]


def test_saving_is_audited(client, environments, shop, release_manager):
    dev, qa, _, _ = environments
    client.force_login(release_manager)
    response = client.post(
        reverse("lifecycle:plan-save"),
        {"source": dev.pk, "target": qa.pk, "application": shop.pk, "name": "Weekly"},
    )
    assert response.status_code == 302
    plan = DeploymentPlan.objects.get()
    event = AuditEvent.objects.get(action=AuditEvent.Action.PLAN_SAVED)
    assert event.user == release_manager and event.environment == qa.name
    assert event.after == {
        "plan": plan.pk,
        "name": "Weekly",
        "source": "Development",
        "target": "Quality Assurance",
        "applications": ["Shop"],
    }


def test_a_deployment_refuses_a_plan_saved_for_another_pair(client, environments, shop, release_manager):
    dev, qa, pre, _ = environments
    foreign = save_plan(release_manager, qa, pre, [shop], name="Other pair's plan", numbers={})
    client.force_login(release_manager)
    fingerprint = validate(dev, qa, [shop]).fingerprint
    response = client.post(
        RUN,
        {
            "source": dev.pk,
            "target": qa.pk,
            "application": shop.pk,
            "fingerprint": fingerprint,
            "plan": foreign.pk,
        },
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "not one saved from Development to Quality Assurance; nothing was deployed" in html
    assert "Other pair" not in html
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("plan", ["999999", "x", ""])
def test_a_deployment_with_an_unknown_plan_is_refused_or_runs_without(
    client, environments, shop, release_manager, plan
):
    dev, qa, _, _ = environments
    client.force_login(release_manager)
    fingerprint = validate(dev, qa, [shop]).fingerprint
    data = {
        "source": dev.pk,
        "target": qa.pk,
        "application": shop.pk,
        "fingerprint": fingerprint,
        "plan": plan,
    }
    response = client.post(RUN, data)
    if plan == "999999":
        assert response.status_code == 422 and not Deployment.objects.exists()
    else:  # No plan named: an ordinary deployment.
        assert response.status_code == 302 and Deployment.objects.get().plan is None


def test_a_plan_opened_from_the_deploy_page_is_carried_to_the_deployment(
    client, environments, shop, release_manager, nightly
):
    dev, qa, _, _ = environments
    client.force_login(release_manager)
    page = client.get(client.get(open_url(nightly)).url).content.decode()
    assert f'<input type="hidden" name="plan" value="{nightly.pk}">' in page


def test_the_deploy_page_refuses_a_foreign_plan_id_in_its_address(
    client, environments, shop, release_manager
):
    dev, qa, pre, _ = environments
    foreign = save_plan(release_manager, qa, pre, [shop], name="Other pair's plan", numbers={})
    client.force_login(release_manager)
    response = client.get(
        reverse("lifecycle:deploy"),
        {"source": dev.pk, "target": qa.pk, "application": shop.pk, "plan": foreign.pk},
    )
    assert response.status_code == 422
    assert 'name="plan"' not in response.content.decode()


# The rules live in the domain: every way in gets them.


def test_the_domain_hides_and_refuses(environments, shop, nightly):
    dev, qa, pre, _ = environments
    outsider = make_user("qa-only", {qa: AccessLevel.FULL})
    with pytest.raises(Http404):
        delete_plan(outsider, nightly)
    viewer = make_user("viewer-both", {dev: AccessLevel.VIEW, qa: AccessLevel.VIEW})
    with pytest.raises(PermissionDenied):
        delete_plan(viewer, nightly)
    with pytest.raises(PermissionDenied):
        save_plan(viewer, dev, qa, [shop], name="Mine", numbers={})
    with pytest.raises(PlanError):
        plan_for_deployment(outsider, nightly.pk, dev, qa)
    with pytest.raises(PlanError):
        plan_for_deployment(viewer, nightly.pk, qa, pre)
    assert plan_for_deployment(viewer, nightly.pk, dev, qa) == nightly
    assert DeploymentPlan.objects.count() == 1
