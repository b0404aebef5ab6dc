"""People acting at once, on PostgreSQL with real threads: one wins, the other is told, nothing is lost."""

import threading
from functools import partial

import pytest
from django.db import connection

from hotfixes.merging import StaleMerge, perform, prepare, take_everything
from hotfixes.models import Hotfix, HotfixChange
from lifecycle.deploying.plans import delete_plan, save_plan
from lifecycle.models import AuditEvent, CurrentVersion, DeploymentPlan, ModuleVersion
from lifecycle.publishing import StaleEdit, publish
from tests.factories import released_application

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks across connections need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


def race(*actions):
    """Run the actions in threads released at the same moment; return what each returned or raised."""
    barrier = threading.Barrier(len(actions))
    outcomes = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait(timeout=10)
            outcomes[index] = action()
        except Exception as error:  # noqa: BLE001  (the outcome under test)
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def current(module, environment):
    return CurrentVersion.objects.get(module=module, environment=environment).version


@pytest.mark.parametrize("attempt", range(3))
def test_it_lets_one_of_two_edits_of_one_module_win(environments, developer, release_manager, attempt):
    _, (core,), _ = released_application("Shop", environments)
    dev = environments[0]
    base = current(core, dev)
    outcomes = race(
        lambda: publish(core, dev, {"main.py": b"alice"}, user=developer, based_on=base, check_stale=True),
        lambda: publish(
            core, dev, {"main.py": b"bob"}, user=release_manager, based_on=base, check_stale=True
        ),
    )
    won = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, StaleEdit)]
    assert len(won) == 1 and len(lost) == 1
    assert "changed in Development while you were editing" in str(lost[0])
    assert current(core, dev) == won[0].version and won[0].version.parent == base


@pytest.mark.parametrize("attempt", range(3))
def test_it_keeps_both_of_two_uploads_in_order(environments, developer, release_manager, attempt):
    """Uploads do not start from a version: both land, the second on top of the first, none lost."""
    _, (core,), _ = released_application("Shop", environments)
    dev = environments[0]
    outcomes = race(
        lambda: publish(core, dev, {"main.py": b"alice"}, user=developer),
        lambda: publish(core, dev, {"main.py": b"bob"}, user=release_manager),
    )
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    versions = sorted((o.version for o in outcomes), key=lambda v: v.number)
    assert [v.number for v in versions] == [2, 3]
    assert versions[1].parent == versions[0]
    assert current(core, dev) == versions[1]


@pytest.mark.parametrize("attempt", range(3))
def test_it_never_loses_a_publish_racing_a_merge_into_its_target(environments, release_manager, attempt):
    application, (core,), _ = released_application("Shop", environments)
    dev, qa, pre, _ = environments
    publish(core, pre, {"main.py": b"hotfix"}, user=release_manager)
    prepared = prepare(application, pre, qa)
    selections = take_everything(prepared)
    outcomes = race(
        lambda: perform(prepared, selections, user=release_manager, fingerprint=prepared.fingerprint),
        lambda: publish(core, qa, {"main.py": b"qa work"}, user=release_manager),
    )
    merged, published = outcomes
    assert not isinstance(published, Exception)
    final = current(core, qa)
    if isinstance(merged, StaleMerge):
        # The publish came first: the merge was refused and QA runs the publish.
        assert final == published.version
    else:
        assert not isinstance(merged, Exception), merged
        # The merge came first: the publish built on the merged version.
        assert final == published.version and published.version.parent.merged_from is not None
    assert ModuleVersion.objects.filter(module=core, pk=published.version.pk).exists()


def test_two_first_publishes_into_one_environment_open_one_hotfix_with_both(environments, release_manager):
    """No hotfix is open yet and two modules of one application are published into QA at once.

    Both check "no open hotfix" before either has opened one; only one may open it, and the other
    must add its change to it rather than fail on the one-open-hotfix constraint. Ten rounds, since
    one lucky interleaving proves nothing.
    """
    qa = environments[1]
    for round_ in range(10):
        application, (core, web), _ = released_application(
            f"Shop{round_}", environments, module_names=("Core", "Web")
        )
        outcomes = race(
            partial(publish, core, qa, {"main.py": b"core fix"}, user=release_manager),
            partial(publish, web, qa, {"main.py": b"web fix"}, user=release_manager),
        )
        assert all(not isinstance(o, Exception) for o in outcomes), f"round {round_}: {outcomes}"
        (hotfix,) = Hotfix.objects.filter(application=application, environment=qa)
        assert hotfix.is_open
        changes = HotfixChange.objects.filter(hotfix=hotfix)
        assert sorted(c.version_id for c in changes) == sorted(o.version.pk for o in outcomes)
        assert current(core, qa) == outcomes[0].version and current(web, qa) == outcomes[1].version
        opened = AuditEvent.objects.filter(
            action=AuditEvent.Action.HOTFIX_OPENED, application=application.name
        )
        assert opened.count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_of_two_deletes_of_one_plan_one_deletes_and_the_other_is_told_it_is_gone(
    environments, release_manager, attempt
):
    """Both found the plan before either deleted it: the audit trail must still say it went once."""
    application, _, _ = released_application("Shop", environments)
    plan = save_plan(
        release_manager, environments[0], environments[1], [application], name="Nightly", numbers={}
    )
    outcomes = race(
        partial(delete_plan, release_manager, DeploymentPlan.objects.get(pk=plan.pk)),
        partial(delete_plan, release_manager, DeploymentPlan.objects.get(pk=plan.pk)),
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Http404", "NoneType"], outcomes
    assert not DeploymentPlan.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PLAN_DELETED).count() == 1
