import re

import pytest
from django.urls import reverse

from lifecycle.models import (
    ApplicationTag,
    CurrentVersion,
    Deployment,
    DeploymentPlan,
    EnvironmentTag,
    TagMember,
)
from lifecycle.pipeline import build_rows
from lifecycle.tagging import tag_environment
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db
DEPLOY = reverse("lifecycle:deploy")
RUN = reverse("lifecycle:deploy-run")


@pytest.fixture
def hotfixed(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,), _ = released_application("eCommerce", environments, ("Cart",))
    fix = publish_files(cart, pre, {"main.py": "fixed"}, user=release_manager)
    return application, cart, fix


def plan_page(client, source, target, *applications, **extra):
    query = {"source": source.pk, "target": target.pk, "application": [a.pk for a in applications], **extra}
    return client.get(DEPLOY, query)


def fingerprint(html):
    return re.search(r'name="fingerprint" value="([0-9a-f]+)"', html).group(1)


def test_it_suggests_tag_and_deploy_031_for_the_hotfix(client, release_manager, environments, hotfixed):
    application, _, _ = hotfixed
    client.force_login(release_manager)
    html = plan_page(client, environments[2], environments[3], application).content.decode()
    assert ">Tag &amp; Deploy 0.3.1</button>" in html
    assert f'name="number-{application.pk}" value="0.3.1"' in html


def test_it_answers_htmx_with_the_plan_fragment(client, release_manager, environments, hotfixed):
    application, _, _ = hotfixed
    client.force_login(release_manager)
    response = client.get(
        DEPLOY,
        {"source": environments[2].pk, "target": environments[3].pk, "application": application.pk},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="plan"') and "<html" not in html


def test_it_deploys_and_shows_the_deployment(client, release_manager, environments, hotfixed):
    application, cart, fix = hotfixed
    pre, prod = environments[2], environments[3]
    client.force_login(release_manager)
    html = plan_page(client, pre, prod, application).content.decode()
    response = client.post(
        RUN,
        {
            "source": pre.pk,
            "target": prod.pk,
            "application": application.pk,
            f"number-{application.pk}": "0.3.1",
            "fingerprint": fingerprint(html),
            "notes": "Quantity fix",
        },
    )
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "lifecycle:deployment", args=[deployment.pk]
    )
    assert deployment.status == Deployment.Status.FINISHED and deployment.notes == "Quantity fix"
    assert CurrentVersion.objects.get(environment=prod, module=cart).version == fix
    grid = client.get(reverse("lifecycle:pipeline")).content.decode()
    row = re.search(r'<tr data-application="eCommerce"[^>]*>(.*?)</tr>', grid, re.S).group(1)
    assert re.findall(r'<span class="version">([^<]+)</span>', row) == ["0.3", "0.3", "0.3.1", "0.3.1"]
    assert 'class="cell hotfix" data-environment="Pre-Production"' in row


def test_it_redirects_htmx_with_hx_redirect(client, release_manager, environments, hotfixed):
    application, _, _ = hotfixed
    pre, prod = environments[2], environments[3]
    client.force_login(release_manager)
    html = plan_page(client, pre, prod, application).content.decode()
    response = client.post(
        RUN,
        {
            "source": pre.pk,
            "target": prod.pk,
            "application": application.pk,
            "fingerprint": fingerprint(html),
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("lifecycle:deployment", args=[Deployment.objects.get().pk])


def test_it_refuses_a_stale_plan_and_writes_nothing(client, release_manager, environments, hotfixed):
    application, cart, _ = hotfixed
    pre, prod = environments[2], environments[3]
    client.force_login(release_manager)
    stale = fingerprint(plan_page(client, pre, prod, application).content.decode())
    publish_files(cart, pre, {"main.py": "fixed again"})
    response = client.post(
        RUN, {"source": pre.pk, "target": prod.pk, "application": application.pk, "fingerprint": stale}
    )
    assert response.status_code == 409
    assert "changed after this plan was validated" in response.content.decode()
    assert not Deployment.objects.exists()
    assert EnvironmentTag.objects.get(environment=prod, application=application).tag.number == "0.3"


def test_it_refuses_without_deploy_access(client, developer, environments, hotfixed):
    application, _, _ = hotfixed
    pre, prod = environments[2], environments[3]
    client.force_login(developer)
    html = plan_page(client, pre, prod, application).content.decode()
    assert "needs deploy access" in html and 'id="deploy-button"' not in html
    response = client.post(
        RUN,
        {
            "source": pre.pk,
            "target": prod.pk,
            "application": application.pk,
            "fingerprint": fingerprint(html),
        },
    )
    assert response.status_code == 403
    assert not Deployment.objects.exists()


def test_it_plans_all_applications_with_differences(client, release_manager, environments):
    dev, qa = environments[0], environments[1]
    released_application("Quiet", environments)
    _, (a,), _ = released_application("Alpha", environments)
    _, (b,), _ = released_application("Beta", environments)
    publish_files(a, dev, {"main.py": "a"})
    publish_files(b, dev, {"main.py": "b"})
    client.force_login(release_manager)
    html = client.get(DEPLOY, {"source": dev.pk, "target": qa.pk, "all": "differences"}).content.decode()
    assert re.findall(r'<tr data-application="([^"]+)"[^>]*>', html) == ["Alpha", "Beta"]
    assert ">Deploy 2 applications</button>" in html


def test_all_with_differences_leaves_out_an_application_with_nothing_in_the_source(
    client, release_manager, environments
):
    """Only in QA, nothing in Development: Development -> QA differs, yet there is nothing to deploy."""
    dev, qa = environments[0], environments[1]
    _, (a,), _ = released_application("Alpha", environments)
    publish_files(a, dev, {"main.py": "a"})
    _, (late,) = make_application("Late")
    publish_files(late, qa, {"main.py": "made in QA"})
    client.force_login(release_manager)
    html = client.get(DEPLOY, {"source": dev.pk, "target": qa.pk, "all": "differences"}).content.decode()
    assert re.findall(r'<tr data-application="([^"]+)"[^>]*>', html) == ["Alpha"]
    row = build_rows([late.application], [dev, qa])[0]
    assert row.gaps[0].differs and not row.gaps[0].deployable


def test_it_saves_reopens_and_runs_a_plan(client, release_manager, environments):
    dev, qa = environments[0], environments[1]
    _, (a,), _ = released_application("Alpha", environments)
    application = a.application
    publish_files(a, dev, {"main.py": "a"})
    client.force_login(release_manager)
    response = client.post(
        reverse("lifecycle:plan-save"),
        {
            "source": dev.pk,
            "target": qa.pk,
            "application": application.pk,
            "name": "Weekly",
            f"number-{application.pk}": "0.9",
        },
    )
    plan = DeploymentPlan.objects.get()
    assert plan.items.get().number == "0.9"
    opened = client.get(response.url).content.decode()
    assert 'value="0.9"' in opened and ">Tag &amp; Deploy 0.9</button>" in opened
    client.post(
        RUN,
        {
            "source": dev.pk,
            "target": qa.pk,
            "application": application.pk,
            f"number-{application.pk}": "0.9",
            "fingerprint": fingerprint(opened),
            "plan": plan.pk,
        },
    )
    assert Deployment.objects.get().plan == plan
    assert EnvironmentTag.objects.get(environment=qa, application=application).tag.number == "0.9"
    assert DeploymentPlan.objects.filter(pk=plan.pk).exists()  # A plan is kept for re-use.


def test_it_rolls_back_in_one_flow(client, release_manager, environments):
    dev, qa, pre, prod = environments
    application, (core,), old = released_application("Shop", environments, number="0.3")
    publish_files(core, dev, {"main.py": "0.4"})
    new = tag_environment(application, dev, "0.4")
    from lifecycle.deploying.switching import deploy_tag

    deploy_tag(new, prod)
    url = reverse("lifecycle:rollback", args=[application.pk, old.pk])
    client.force_login(release_manager)
    page = client.get(url, {"environment": prod.pk}).content.decode()
    assert 'name="number" value="0.4.1"' in page and "undoes the changes" in page
    response = client.post(
        url,
        {"environment": prod.pk, "number": "0.4.1", "fingerprint": fingerprint(page), "deploy_anyway": "on"},
    )
    assert response.status_code == 302
    rolled = ApplicationTag.objects.get(application=application, number="0.4.1")
    assert dict(TagMember.objects.filter(tag=rolled).values_list("module_id", "version_id")) == dict(
        TagMember.objects.filter(tag=old).values_list("module_id", "version_id")
    )
    assert CurrentVersion.objects.get(environment=prod, module=core).version.number == 1
    assert EnvironmentTag.objects.get(environment=prod, application=application).tag == rolled
    assert Deployment.objects.get().status == Deployment.Status.WARNINGS


def test_it_refuses_a_rollback_without_confirmation(client, release_manager, environments):
    dev, _, _, prod = environments
    application, (core,), old = released_application("Shop", environments, number="0.3")
    publish_files(core, dev, {"main.py": "0.4"})
    from lifecycle.deploying.switching import deploy_tag

    deploy_tag(tag_environment(application, dev, "0.4"), prod)
    url = reverse("lifecycle:rollback", args=[application.pk, old.pk])
    client.force_login(release_manager)
    page = client.get(url, {"environment": prod.pk}).content.decode()
    response = client.post(url, {"environment": prod.pk, "number": "0.4.1", "fingerprint": fingerprint(page)})
    assert response.status_code == 409 and "Deploy anyway" in response.content.decode()
    assert not Deployment.objects.exists()


def test_it_shows_a_version_diff_escaped(client, viewer, environments):
    _, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "<script>x()</script>\n"})
    client.force_login(viewer)
    html = client.get(reverse("hotfixes:diff", args=[core.pk, 1, 2])).content.decode()
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "<script>x()" not in html
    assert 'class="diff-add"' in html and 'class="diff-del"' in html
