"""Drift: Adopt as hotfix and Redeploy (lifecycle.delivery.drift), once each, by those who may, audited.

A drift is made as the agent's upload makes it (lifecycle/delivery/reports.py): the files
stored as blobs and an open Drift on the deployed version.
"""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from hotfixes.merging import perform, prepare
from hotfixes.models import Hotfix
from lifecycle.archives import ArchiveRejected
from lifecycle.delivery import drift as drifts
from lifecycle.delivery.live import live_states
from lifecycle.models import (
    AccessLevel,
    AuditEvent,
    CurrentVersion,
    Delivery,
    Drift,
    Environment,
    LiveApplication,
    ModuleVersion,
)
from lifecycle.publishing import StaleEdit, store_blobs
from lifecycle.snapshots import tree_hash
from tests.delivery.test_live import report, seen
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PATCHED = "# Shop-Cart\nprint('hello')\nprint('patched on the server')\n"


@pytest.fixture
def shop(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    production = environments[-1]
    production.delivery = Delivery.AGENT
    production.save()
    seen(production, seconds_ago=1)
    return application, cart, production


def found(module, environment, files):
    """The open drift an agent's upload of `files` (path -> text or bytes) leaves."""
    files = {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}
    manifest = store_blobs(files)
    return Drift.objects.create(
        environment=environment,
        module=module,
        deployed_version=CurrentVersion.objects.get(module=module, environment=environment).version,
        manifest=manifest,
        tree_hash=tree_hash(manifest),
        found_at=timezone.now(),
    )


@pytest.fixture
def drift(shop):
    _, cart, production = shop
    return found(cart, production, {"main.py": PATCHED, "static/logo.png": PNG})


def current(module, environment):
    return CurrentVersion.objects.get(module=module, environment=environment).version


def counts():
    return (
        ModuleVersion.objects.count(),
        Hotfix.objects.count(),
        AuditEvent.objects.filter(action__startswith="drift").count(),
        list(Drift.objects.values_list("pk", "resolution")),
        list(LiveApplication.objects.values_list("pk", "desired_generation")),
        list(Environment.objects.values_list("pk", "state_revision")),
    )


# Adopt as hotfix.


def test_adopting_publishes_the_files_found_and_opens_a_hotfix(shop, drift, release_manager):
    application, cart, production = shop
    deployed = current(cart, production)
    revision = Environment.objects.get(pk=production.pk).state_revision
    adopted = drifts.adopt(drift, release_manager, comment="A fix made on web-1 at night")

    version = current(cart, production)
    assert version != deployed and version.parent == deployed
    assert version.manifest() == drift.manifest and version.tree_hash == drift.tree_hash
    assert version.comment == "A fix made on web-1 at night" and version.created_by == release_manager
    assert (adopted.resolution, adopted.adopted_version, adopted.resolved_by) == (
        Drift.Resolution.ADOPTED,
        version,
        release_manager,
    )
    assert adopted.resolved_at is not None
    hotfix = Hotfix.objects.open().get(application=application, environment=production)
    assert list(hotfix.changes.values_list("version", flat=True)) == [version.pk]
    event = AuditEvent.objects.get(action=AuditEvent.Action.DRIFT_ADOPTED)
    assert (event.user, event.environment, event.application) == (release_manager, "Production", "Shop")
    assert event.before["version"] == deployed.number and event.after["version"] == version.number
    # What should run there changed: the agents see it at their next poll.
    assert Environment.objects.get(pk=production.pk).state_revision > revision


def test_without_a_comment_the_version_says_where_its_files_came_from(drift, release_manager):
    adopted = drifts.adopt(drift, release_manager)
    assert adopted.adopted_version.comment.startswith("Adopted the files found on Production's machines on ")


def test_once_the_agent_applies_the_adopted_version_the_cell_is_delivered_and_red(
    shop, drift, release_manager, environments, client, viewer
):
    application, cart, production = shop
    drifts.adopt(drift, release_manager)
    states = live_states([application], [production])
    assert states[application.pk, production.pk].state == "delivering"  # desired now differs from applied
    assert states[application.pk, production.pk].drift_id is None
    report(application, production)  # the agent applied the adopted files: they are what it finds
    assert live_states([application], [production])[application.pk, production.pk].state == "delivered"
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert 'class="cell hotfix" data-environment="Production"' in html
    assert 'data-live="delivered"' in html


def test_the_adopted_hotfix_merges_back(shop, drift, release_manager, environments):
    application, cart, production = shop
    pre = environments[2]
    drifts.adopt(drift, release_manager)
    prepared = prepare(application, production, pre)
    perform(prepared, user=release_manager, fingerprint=prepared.fingerprint, comment="Back from Production")
    assert current(cart, pre).tree_hash == drift.tree_hash
    assert current(cart, pre).merged_from == current(cart, production)


def test_adopting_in_the_first_environment_is_a_plain_publish(environments, release_manager):
    application, (cart,), _ = released_application("Shop", environments)
    development = environments[0]
    development.delivery = Delivery.AGENT
    development.save()
    adopted = drifts.adopt(found(cart, development, {"main.py": "changed on the dev box"}), release_manager)
    assert current(cart, development) == adopted.adopted_version
    assert not Hotfix.objects.exists()


def test_a_changed_environment_refuses_the_adoption(shop, drift, release_manager):
    _, cart, production = shop
    newer = publish_files(cart, production, {"main.py": "a hotfix published meanwhile"})
    before = counts()
    with pytest.raises(StaleEdit):
        drifts.adopt(drift, release_manager)
    assert counts() == before
    assert current(cart, production) == newer


def test_files_equal_to_the_deployed_version_are_nothing_to_adopt(shop, release_manager):
    _, cart, production = shop
    same = found(cart, production, {"main.py": "# Shop-Cart\nprint('hello')\n"})
    before = counts()
    with pytest.raises(drifts.DriftNotAdoptable, match="nothing to adopt"):
        drifts.adopt(same, release_manager)
    assert counts() == before


def test_files_not_kept_are_refused_whole(shop, drift, release_manager):
    drift.manifest = {**drift.manifest, "lost.py": "0" * 64}
    drift.save()
    before = counts()
    with pytest.raises(drifts.DriftNotAdoptable, match="were not kept"):
        drifts.adopt(drift, release_manager)
    assert counts() == before


@pytest.mark.parametrize("comment", ["x" * 2001, "nul\x00byte"])
def test_a_comment_that_cannot_be_stored_is_refused(drift, release_manager, comment):
    before = counts()
    with pytest.raises(ArchiveRejected):
        drifts.adopt(drift, release_manager, comment=comment)
    assert counts() == before


# Redeploy.


def test_redeploying_bumps_the_generation_and_resolves_the_drift(shop, drift, release_manager):
    application, cart, production = shop
    report(application, production, live={"Shop-Cart": drift.tree_hash})
    revision = Environment.objects.get(pk=production.pk).state_revision
    redeployed = drifts.redeploy(drift, release_manager)
    assert (redeployed.resolution, redeployed.resolved_by, redeployed.adopted_version) == (
        Drift.Resolution.REDEPLOYED,
        release_manager,
        None,
    )
    row = LiveApplication.objects.get(environment=production, application=application)
    assert (row.desired_generation, row.applied_generation) == (1, 0)
    assert Environment.objects.get(pk=production.pk).state_revision == revision + 1
    assert current(cart, production) == drift.deployed_version  # nothing published
    event = AuditEvent.objects.get(action=AuditEvent.Action.DRIFT_REDEPLOYED)
    assert (event.user, event.environment, event.after["generation"]) == (release_manager, "Production", 1)
    # The agents have work to do: the cell says so until they report the new generation applied.
    assert live_states([application], [production])[application.pk, production.pk].state == "delivering"
    report(application, production, generations=(1, 1))
    assert live_states([application], [production])[application.pk, production.pk].state == "delivered"


def test_redeploying_without_any_report_yet_makes_the_row(shop, drift, release_manager):
    application, _, production = shop
    drifts.redeploy(drift, release_manager)
    row = LiveApplication.objects.get(environment=production, application=application)
    assert row.desired_generation == 1 and row.reported_at is None


# Once each: a second action, from another tab or another user, is refused and writes nothing.


@pytest.mark.parametrize(
    ("first", "second", "said"),
    [
        ("adopt", "adopt", "was adopted as hotfix v2 by release-manager"),
        ("adopt", "redeploy", "was adopted as hotfix v2 by release-manager"),
        ("redeploy", "adopt", "was redeployed over by release-manager"),
        ("redeploy", "redeploy", "was redeployed over by release-manager"),
    ],
)
def test_a_second_action_is_refused(environments, drift, release_manager, first, second, said):
    other = make_user("other", {environment: AccessLevel.PUBLISH for environment in environments})
    getattr(drifts, first)(drift, release_manager)
    before = counts()
    stale_copy = Drift.objects.get(pk=drift.pk)
    stale_copy.resolved_at = None  # as the other tab still sees it
    with pytest.raises(drifts.DriftResolved) as refused:
        getattr(drifts, second)(stale_copy, other)
    assert said in str(refused.value) and str(refused.value).endswith("; nothing was done.")
    assert counts() == before


def test_a_drift_gone_by_itself_is_refused(drift, release_manager):
    Drift.objects.filter(pk=drift.pk).update(resolved_at=timezone.now(), resolution=Drift.Resolution.GONE)
    with pytest.raises(drifts.DriftResolved, match="the machine matches the deployed version again"):
        drifts.adopt(drift, release_manager)


# Who may.


@pytest.mark.parametrize("action", ["adopt", "redeploy"])
@pytest.mark.parametrize(
    ("level", "refusal"),
    [(None, Http404), (AccessLevel.VIEW, PermissionDenied)],
)
def test_it_needs_publish_access_in_the_drifts_environment(environments, drift, action, level, refusal):
    # Publish everywhere else: access is checked in the drift's environment, not anywhere.
    levels = {e: AccessLevel.FULL for e in environments[:-1]}
    if level is not None:
        levels[environments[-1]] = level
    user = make_user("someone", levels)
    before = counts()
    with pytest.raises(refusal):
        getattr(drifts, action)(drift, user)
    assert counts() == before


@pytest.mark.parametrize("action", ["adopt", "redeploy"])
def test_publish_access_is_enough(environments, drift, action):
    user = make_user("publisher", {environments[-1]: AccessLevel.PUBLISH})
    assert getattr(drifts, action)(drift, user).resolved_by == user
