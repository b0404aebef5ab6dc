"""Identical content is the same version to the eye (issue 9, item 13).

After a hotfix is merged back, the earlier environment's files are byte for
byte those of the hotfix tag, under new version ids. It shows that tag, with no
`+` and no arrow, and deploying it never makes a new number.
"""

import re

import pytest
from django.urls import reverse

from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.models import ApplicationTag, CurrentVersion, Deployment, EnvironmentTag
from lifecycle.pipeline import build_rows
from lifecycle.publishing import publish
from lifecycle.tagging import tag_environment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db


def files_of(version):
    return {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}


def merge_back(module, version, environment):
    """What merging `version`'s change into `environment` publishes: its files under a new version id."""
    return publish(module, environment, files_of(version), merged_from=version).version


@pytest.fixture
def seed(environments, release_manager):
    """eCommerce 0.3 everywhere; a hotfix in Pre-Production deployed as 0.3.1; merged into QA."""
    dev, qa, pre, prod = environments
    application, (cart, catalog), _ = released_application("eCommerce", environments, ("Cart", "Catalog"))
    fix = publish_files(cart, pre, {"main.py": "fixed"}, user=release_manager)
    tag = tag_environment(application, pre, "0.3.1")
    deploy_tag(tag, prod)
    merged = merge_back(cart, fix, qa)
    assert merged.pk != fix.pk and merged.tree_hash == fix.tree_hash
    return application, cart, fix, merged


def row_of(application, environments):
    (row,) = build_rows([application], environments)
    return row


def test_an_environment_running_a_tags_contents_shows_that_tag(environments, seed):
    application, *_ = seed
    dev, qa, pre, prod = row_of(application, environments).cells
    assert EnvironmentTag.objects.get(environment=qa.environment, application=application).tag.number == "0.3"
    assert [dev.label, qa.label, pre.label, prod.label] == ["0.3", "0.3.1", "0.3.1", "0.3.1"]
    assert qa.differing == 0


def test_no_arrow_between_identical_contents(environments, seed):
    application, *_ = seed
    gaps = row_of(application, environments).gaps
    assert [gap.differing for gap in gaps] == [1, 0, 0]


def test_the_grid_shows_no_plus_and_no_arrow(client, viewer, environments, seed):
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:pipeline")).content.decode()
    row = re.search(r'<tr data-application="eCommerce"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert "0.3+" not in row and "0.3.1+" not in row
    assert row.count('class="gap-mark"') == 1  # Development → Quality Assurance only


def test_deploying_identical_content_is_nothing_to_deploy(environments, seed):
    application, *_ = seed
    _, qa, pre, _ = environments
    (item,) = validate(qa, pre, [application]).items
    assert not item.needs_tag
    assert item.action_label == "Nothing to deploy"
    assert [f.code for f in item.findings] == ["nothing_to_deploy"]


def test_an_environment_equal_to_its_own_tag_under_new_ids_shows_no_plus(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (core,), tag = released_application("Shop", environments)
    original = CurrentVersion.objects.get(environment=qa, module=core).version
    publish_files(core, qa, {"main.py": "a change"}, user=release_manager)
    back = publish_files(core, qa, files_of(original), user=release_manager)
    assert back.pk != original.pk and back.tree_hash == original.tree_hash

    cells = row_of(application, environments).cells
    assert cells[1].label == "0.3"
    (item,) = validate(qa, pre, [application]).items
    assert not item.needs_tag and item.action_label == "Nothing to deploy"


def test_deploying_contents_equal_to_an_existing_tag_deploys_that_tag(environments, seed, release_manager):
    application, cart, fix, merged = seed
    dev, qa, pre, prod = environments
    # Pre-Production moved on after 0.3.1; Quality Assurance still runs 0.3.1's contents.
    later = publish_files(cart, pre, {"main.py": "fixed twice"}, user=release_manager)
    tags_before = ApplicationTag.objects.count()

    validation = validate(qa, pre, [application])
    (item,) = validation.items
    assert not item.needs_tag and item.action_label == "Deploy 0.3.1"
    assert item.versions[cart.pk] == fix.pk  # the tag's versions, as deploy_tag makes them current
    undone = [f for f in item.findings if f.code == "undoes_changes"]
    assert undone and undone[0].modules[0]["target_version"] == later.number

    deployment = start_deployment(
        qa, pre, [application], user=release_manager, fingerprint=validation.fingerprint, deploy_anyway=True
    )
    deployment = run_deployment(deployment.pk)
    assert deployment.status == Deployment.Status.WARNINGS
    assert ApplicationTag.objects.count() == tags_before  # no new number
    assert EnvironmentTag.objects.get(environment=pre, application=application).tag.number == "0.3.1"
    assert CurrentVersion.objects.get(environment=pre, module=cart).version == fix


def test_an_environment_running_a_tags_contents_in_several_modules_shows_that_tag(
    environments, seed, release_manager
):
    # Looked up by the content of one module: 0.3.1 holds Cart's too, but not Catalog's.
    application, cart, fix, merged = seed
    dev, qa, pre, prod = environments
    catalog = application.modules.exclude(pk=cart.pk).get()
    catalog_fix = publish_files(catalog, pre, {"main.py": "catalog fixed"}, user=release_manager)
    tag_environment(application, pre, "0.3.2")
    merge_back(catalog, catalog_fix, qa)

    cells = row_of(application, environments).cells
    assert [cell.label for cell in cells] == ["0.3", "0.3.2", "0.3.2", "0.3.1"]
    assert cells[1].tagged == {cart.pk: fix.pk, catalog.pk: catalog_fix.pk}
    (item,) = validate(qa, prod, [application]).items
    assert not item.needs_tag and item.action_label == "Deploy 0.3.2"


def test_a_real_difference_still_shows_plus_and_an_arrow(environments, seed):
    application, cart, _, _ = seed
    dev, qa, pre, prod = environments
    publish_files(cart, qa, {"main.py": "qa only"})
    row = row_of(application, environments)
    assert row.cells[1].label == "0.3+"
    assert [gap.differing for gap in row.gaps] == [1, 1, 0]
    (item,) = validate(qa, pre, [application]).items
    assert item.needs_tag and item.number == "0.3.2"


def test_the_grid_keeps_a_fixed_number_of_queries_with_equal_contents(
    client, viewer, environments, django_assert_max_num_queries
):
    dev, qa, pre, prod = environments
    for index in range(6):
        application, (core,), _ = released_application(f"App {index}", environments)
        fix = publish_files(core, pre, {"main.py": f"fix {index}"})
        tag_environment(application, pre, "0.3.1")
        merge_back(core, fix, qa)
    client.force_login(viewer)
    with django_assert_max_num_queries(11):  # 10, and the pipeline revision read first (lifecycle/refresh.py)
        html = client.get(reverse("lifecycle:pipeline")).content.decode()
    assert "0.3+" not in html


def test_rolling_back_to_a_tag_whose_files_already_run_is_nothing_to_do(environments, release_manager):
    from lifecycle.rollback import rollback_validation

    dev, qa, pre, prod = environments
    application, (core,), old = released_application("Shop", environments)
    original = CurrentVersion.objects.get(environment=qa, module=core).version
    publish_files(core, qa, {"main.py": "a change"}, user=release_manager)
    publish_files(core, qa, files_of(original), user=release_manager)  # back to 0.3's files

    plan = rollback_validation(application, old, qa)
    assert [f.code for f in plan.findings] == ["nothing_to_deploy"] and plan.has_errors
    assert "already runs exactly the files of 0.3" in plan.findings[0].message
