"""Tag & Deploy under failure, stale plans, missing access and concurrency.

A deployment either switches every module of every application it deploys or
changes nothing; it never runs on a plan older than what the user saw; its
cost in queries does not grow with the number of modules; and two writers
into one target (two deployments, or a deployment and a publish) never lose
or mix each other's work.
"""

import re
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hotfixes.models import Hotfix, HotfixChange
from lifecycle import access
from lifecycle.deploying import switching
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import (
    Application,
    ApplicationTag,
    CurrentVersion,
    Deployment,
    DeploymentItem,
    DeploymentLogLine,
    Environment,
    EnvironmentTag,
    ModuleChange,
    TagMember,
)
from lifecycle.tagging import tag_environment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and concurrent transactions need PostgreSQL"
)
FAILED, FINISHED = Deployment.Status.FAILED, Deployment.Status.FINISHED


def changed_in_development(name, environments, module_names=("Core", "Web")):
    """Released as 0.3 everywhere, then a new version of every module in Development (it shows 0.3+)."""
    application, modules, _ = released_application(name, environments, module_names=module_names)
    for module in modules:
        publish_files(module, environments[0], {"main.py": f"# {module.name}\nprint('newer')\n"})
    return application, modules


def snapshot():
    """Everything a deployment may write, in every environment."""
    return {
        "current": sorted(
            CurrentVersion.objects.values_list(
                "environment_id", "module_id", "version_id", "changed_at", "changed_by_id"
            )
        ),
        "environment_tags": sorted(
            EnvironmentTag.objects.values_list("environment_id", "application_id", "tag_id", "changed_at")
        ),
        "application_tags": ApplicationTag.objects.count(),
        "tag_members": TagMember.objects.count(),
        "module_changes": ModuleChange.objects.count(),
        "deployment_items": DeploymentItem.objects.count(),
    }


def running_in(environment, application):
    """module id -> version id of the application's modules current in `environment`."""
    return dict(
        CurrentVersion.objects.filter(environment=environment, module__application=application).values_list(
            "module_id", "version_id"
        )
    )


def assert_runs_its_tag(environment, application):
    """The environment runs exactly the modules of the tag it names for the application."""
    tag = EnvironmentTag.objects.get(environment=environment, application=application).tag
    assert running_in(environment, application) == dict(tag.members.values_list("module_id", "version_id"))
    return tag


def last_log_line(deployment):
    return deployment.log_lines.order_by("at", "id").last()


# A failure in the middle of the switch.


def test_a_failure_midway_leaves_every_environment_exactly_as_before(
    environments, release_manager, monkeypatch
):
    dev, qa, _, _ = environments
    alpha, _ = changed_in_development("Alpha", environments)
    beta, _ = changed_in_development("Beta", environments)
    validation = validate(dev, qa, [alpha, beta])
    assert [item.needs_tag for item in validation.items] == [True, True]
    deployment = start_deployment(
        dev, qa, [alpha, beta], user=release_manager, fingerprint=validation.fingerprint
    )
    before = snapshot()

    real_deploy_tag = switching.deploy_tag
    seen = []

    def deploy_tag_failing_on_the_second(tag, environment, **kwargs):
        if seen:
            # By now the first application is tagged in Development and switched in the target.
            seen.append(
                (
                    ApplicationTag.objects.filter(application=alpha).count(),
                    running_in(qa, alpha) == running_in(dev, alpha),
                )
            )
            raise RuntimeError("the disk is full")
        seen.append(tag.application.name)
        return real_deploy_tag(tag, environment, **kwargs)

    monkeypatch.setattr(switching, "deploy_tag", deploy_tag_failing_on_the_second)
    deployment = run_deployment(deployment.pk)

    assert seen == ["Alpha", (2, True)]  # The failure came after real writes for Alpha...
    assert snapshot() == before  # ...and all of them were rolled back, Alpha's new tag included.
    assert ApplicationTag.objects.filter(application__in=[alpha, beta]).count() == 2  # Only both 0.3.
    deployment.refresh_from_db()
    assert deployment.status == FAILED
    assert deployment.finished_at is not None
    assert not deployment.items.exists()
    line = last_log_line(deployment)
    assert line.level == DeploymentLogLine.Level.ERROR
    assert line.message == "Failed, nothing was changed in Quality Assurance: the disk is full"


# Stale plans.


@pytest.mark.parametrize("where", [0, 1], ids=["publish into the source", "publish into the target"])
def test_a_plan_validated_before_a_publish_is_refused(environments, release_manager, where):
    dev, qa, _, _ = environments
    shop, (core, _) = changed_in_development("Shop", environments)
    validation = validate(dev, qa, [shop])
    publish_files(core, environments[where], {"main.py": "published after the plan was validated"})
    before = snapshot()

    with pytest.raises(DeploymentRefused) as refused:
        start_deployment(dev, qa, [shop], user=release_manager, fingerprint=validation.fingerprint)

    assert str(refused.value) == (
        "Development or Quality Assurance changed after this plan was validated. Validate it again."
    )
    assert not Deployment.objects.exists()
    assert not DeploymentLogLine.objects.exists()
    assert snapshot() == before


@pytest.mark.parametrize("where", [0, 1], ids=["publish into the source", "publish into the target"])
def test_a_publish_between_start_and_run_fails_the_deployment(
    environments, release_manager, developer, where
):
    dev, qa, _, _ = environments
    shop, (core, _) = changed_in_development("Shop", environments)
    validation = validate(dev, qa, [shop])
    deployment = start_deployment(dev, qa, [shop], user=release_manager, fingerprint=validation.fingerprint)
    before = snapshot()

    published = publish_files(core, environments[where], {"main.py": "published while starting"}, developer)
    deployment = run_deployment(deployment.pk)

    assert deployment.status == FAILED
    assert last_log_line(deployment).message == (
        "Development or Quality Assurance changed after the plan was validated; nothing was deployed. "
        "Validate it again."
    )
    after = snapshot()
    # Unchanged but for the publish: one current version replaced, and its ModuleChange.
    replaced = [row for row in before["current"] if row not in after["current"]]
    added = [row for row in after["current"] if row not in before["current"]]
    assert [row[:3] for row in replaced] == [(environments[where].pk, core.pk, published.parent_id)]
    assert [row[:3] for row in added] == [(environments[where].pk, core.pk, published.pk)]
    assert after["environment_tags"] == before["environment_tags"]
    assert after["application_tags"] == before["application_tags"]
    assert after["tag_members"] == before["tag_members"]
    assert after["module_changes"] == before["module_changes"] + 1
    assert after["deployment_items"] == before["deployment_items"] == 0


def test_a_second_deployment_into_a_target_is_refused_while_one_is_running(
    environments, release_manager, developer
):
    dev, qa, _, _ = environments
    alpha, _ = changed_in_development("Alpha", environments)
    beta, _ = changed_in_development("Beta", environments)
    first = start_deployment(
        dev, qa, [alpha], user=release_manager, fingerprint=validate(dev, qa, [alpha]).fingerprint
    )
    fingerprint = validate(dev, qa, [beta]).fingerprint

    with pytest.raises(DeploymentRefused, match=rf"Deployment {first.pk} into Quality Assurance by "):
        start_deployment(dev, qa, [beta], user=developer, fingerprint=fingerprint)
    assert list(Deployment.objects.all()) == [first]

    assert run_deployment(first.pk).status == FINISHED
    second = start_deployment(dev, qa, [beta], user=developer, fingerprint=fingerprint)
    assert run_deployment(second.pk).status == FINISHED


# A fixed number of queries.


def deployment_queries(environments, user, name, module_count):
    dev, qa, _, _ = environments
    application, _ = changed_in_development(name, environments, [f"M{i:02d}" for i in range(module_count)])
    validation = validate(dev, qa, [application])
    access.forget_cached_levels(user)
    with CaptureQueriesContext(connection) as started:
        deployment = start_deployment(dev, qa, [application], user=user, fingerprint=validation.fingerprint)
    with CaptureQueriesContext(connection) as ran:
        deployment = run_deployment(deployment.pk)
    assert deployment.status == FINISHED
    assert deployment.items.get().modules_changed == module_count
    assert_runs_its_tag(qa, application)
    return len(started), len(ran)


def test_a_deployment_runs_the_same_queries_whatever_the_number_of_modules(environments, release_manager):
    small = deployment_queries(environments, release_manager, "Small", 3)
    large = deployment_queries(environments, release_manager, "Large", 40)
    assert small == large


# Access.


@pytest.mark.parametrize(
    ("persona", "source", "target"),
    [
        ("developer", "Development", "Production"),
        ("viewer", "Development", "Quality Assurance"),
        ("viewer", "Pre-Production", "Production"),
    ],
)
def test_deploying_needs_deploy_access_to_the_target(
    request, client, environments, release_manager, persona, source, target
):
    user = request.getfixturevalue(persona)
    source, target = Environment.objects.get(name=source), Environment.objects.get(name=target)
    shop, _ = changed_in_development("Shop", environments)
    if source != environments[0]:
        publish_files(shop.modules.first(), source, {"main.py": "a hotfix"})
    validation = validate(source, target, [shop])
    assert not validation.has_errors and validation.to_deploy
    before = snapshot()

    with pytest.raises(PermissionDenied, match=f"You need deploy access to {target.name}"):
        start_deployment(source, target, [shop], user=user, fingerprint=validation.fingerprint)
    client.force_login(user)
    data = {"source": source.pk, "target": target.pk, "application": shop.pk}
    response = client.post(reverse("lifecycle:deploy-run"), data | {"fingerprint": validation.fingerprint})
    assert response.status_code == 403

    assert snapshot() == before
    assert not Deployment.objects.exists()
    assert not DeploymentLogLine.objects.exists()
    # The plan itself was fine: someone with the access may run it.
    deployment = start_deployment(
        source, target, [shop], user=release_manager, fingerprint=validation.fingerprint
    )
    assert run_deployment(deployment.pk).status == FINISHED


# Concurrency (PostgreSQL).


def run_threads(*targets, timeout=60):
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_of_two_simultaneous_deployments_into_a_target_exactly_one_runs(
    environments, release_manager, developer, attempt
):
    dev, qa, _, _ = environments
    shop, _ = changed_in_development("Shop", environments, ["Core", "Web", "Api"])
    barrier = threading.Barrier(2, timeout=30)
    outcomes = {}

    def deployer(username):
        try:
            user = User.objects.get(username=username)
            source, target = Environment.objects.get(pk=dev.pk), Environment.objects.get(pk=qa.pk)
            application = Application.objects.get(pk=shop.pk)
            validation = validate(source, target, [application])
            barrier.wait()  # Both validated the same state; now both deploy at once.
            try:
                deployment = start_deployment(
                    source, target, [application], user=user, fingerprint=validation.fingerprint
                )
            except DeploymentRefused as refusal:
                outcomes[username] = ("refused", str(refusal))
                return
            outcomes[username] = (run_deployment(deployment.pk).status, deployment.pk)
        except Exception as error:  # noqa: BLE001  (reported by the assertions below)
            outcomes[username] = ("error", repr(error))
        finally:
            connection.close()

    run_threads(lambda: deployer(release_manager.username), lambda: deployer(developer.username))

    assert sorted(status for status, _ in outcomes.values()) == [FINISHED, "refused"], outcomes
    (message,) = [detail for status, detail in outcomes.values() if status == "refused"]
    running = re.compile(
        r"Deployment \d+ into Quality Assurance by (release-manager|developer) is running since "
        r"\d\d:\d\d:\d\d; try again when it has finished\."
    )
    stale = "Development or Quality Assurance changed after this plan was validated. Validate it again."
    assert running.fullmatch(message) or message == stale, message
    (deployment,) = Deployment.objects.all()  # The refused one wrote nothing.
    assert deployment.status == FINISHED
    assert deployment.items.get().tagged
    tag = assert_runs_its_tag(qa, shop)
    assert assert_runs_its_tag(dev, shop) == tag
    assert running_in(qa, shop) == running_in(dev, shop)
    assert tag.number == "0.4"
    assert ApplicationTag.objects.filter(application=shop).count() == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_a_publish_racing_a_deployment_is_never_lost(environments, release_manager, developer, attempt):
    dev, qa, _, _ = environments
    shop, (core, web) = changed_in_development("Shop", environments)
    before_in_qa = running_in(qa, shop)
    validation = validate(dev, qa, [shop])
    deployment = start_deployment(dev, qa, [shop], user=release_manager, fingerprint=validation.fingerprint)
    barrier = threading.Barrier(2, timeout=30)
    outcomes = {}

    def deploy():
        try:
            barrier.wait()
            outcomes["deploy"] = run_deployment(deployment.pk).status
        except Exception as error:  # noqa: BLE001
            outcomes["deploy"] = repr(error)
        finally:
            connection.close()

    def hotfix():
        try:
            module, target = type(core).objects.get(pk=core.pk), Environment.objects.get(pk=qa.pk)
            barrier.wait()
            time.sleep(attempt * 0.01)  # From "at once" to "a little later": both orders occur.
            outcomes["publish"] = publish_files(module, target, {"main.py": "hotfix"}, developer)
        except Exception as error:  # noqa: BLE001
            outcomes["publish"] = repr(error)
        finally:
            connection.close()

    run_threads(deploy, hotfix)

    published = outcomes["publish"]
    assert not isinstance(published, str), outcomes
    assert outcomes["deploy"] in (FINISHED, FAILED), outcomes
    assert_publish_kept(outcomes["deploy"], deployment, shop, core, web, published, qa, dev, before_in_qa)


def assert_publish_kept(status, deployment, shop, core, web, published, qa, dev, before_in_qa):
    """Never a lost publish: the target runs it, on top of whatever was current when it landed."""
    now_in_qa = running_in(qa, shop)
    assert now_in_qa[core.pk] == published.pk
    hotfix = Hotfix.objects.open().get(application=shop, environment=qa)
    change = HotfixChange.objects.get(hotfix=hotfix)
    last_change = ModuleChange.objects.filter(environment=qa, module=core).order_by("-at", "-id").first()
    assert (last_change.kind, last_change.version_id) == ("publish", published.pk)
    if status == FINISHED:
        # The publish landed after the switch: on top of the deployed version.
        deployed = running_in(dev, shop)
        assert now_in_qa[web.pk] == deployed[web.pk]
        assert published.parent_id == deployed[core.pk]
        assert change.replaced_version_id == deployed[core.pk]
        assert last_change.previous_version_id == deployed[core.pk]
    else:
        # The publish came first: the deployment saw the target change and switched nothing.
        assert last_log_line(deployment).message.startswith(
            "Development or Quality Assurance changed after the plan was validated; nothing was deployed."
        )
        assert now_in_qa == before_in_qa | {core.pk: published.pk}
        assert published.parent_id == before_in_qa[core.pk]
        assert change.replaced_version_id == before_in_qa[core.pk]
        assert last_change.previous_version_id == before_in_qa[core.pk]


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["deploy", "publish"])
def test_a_publish_waiting_on_a_deployment_or_the_reverse_is_never_lost(
    environments, release_manager, developer, monkeypatch, first
):
    """The two orders of the race above, forced: the first holds its locks while the other waits on them."""
    dev, qa, _, _ = environments
    shop, (core, web) = changed_in_development("Shop", environments)
    before_in_qa = running_in(qa, shop)
    validation = validate(dev, qa, [shop])
    deployment = start_deployment(dev, qa, [shop], user=release_manager, fingerprint=validation.fingerprint)
    holding = threading.Event()
    outcomes = {}

    def hold(real):
        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            holding.set()
            time.sleep(0.5)  # The other side now blocks on our row locks until we commit.
            return result

        return wrapper

    if first == "deploy":
        monkeypatch.setattr(switching, "deploy_tag", hold(switching.deploy_tag))
    else:
        import hotfixes.tracking

        monkeypatch.setattr(
            hotfixes.tracking, "record_hotfix_change", hold(hotfixes.tracking.record_hotfix_change)
        )

    def deploy():
        try:
            if first == "publish":
                assert holding.wait(30)
            outcomes["deploy"] = run_deployment(deployment.pk).status
        except Exception as error:  # noqa: BLE001
            outcomes["deploy"] = repr(error)
        finally:
            connection.close()

    def hotfix():
        try:
            module, target = type(core).objects.get(pk=core.pk), Environment.objects.get(pk=qa.pk)
            if first == "deploy":
                assert holding.wait(30)
            outcomes["publish"] = publish_files(module, target, {"main.py": "hotfix"}, developer)
        except Exception as error:  # noqa: BLE001
            outcomes["publish"] = repr(error)
        finally:
            connection.close()

    run_threads(deploy, hotfix)

    assert outcomes["deploy"] == (FINISHED if first == "deploy" else FAILED), outcomes
    published = outcomes["publish"]
    assert not isinstance(published, str), outcomes
    assert_publish_kept(outcomes["deploy"], deployment, shop, core, web, published, qa, dev, before_in_qa)


def test_a_switch_updates_every_row_with_its_own_version(environments, release_manager):
    # On PostgreSQL the rows change in one UPDATE … FROM UNNEST of two arrays: each row gets its own
    # version, and all of them the switch's time and its user.
    names = ("A", "B", "C", "D", "E")
    application, modules = changed_in_development("Batched", environments, module_names=names)
    dev, qa = environments[0], environments[1]
    tag = tag_environment(application, dev, "0.4")
    assert switching.deploy_tag(tag, qa, user=release_manager) == 5
    expected = dict(TagMember.objects.filter(tag=tag).values_list("module_id", "version_id"))
    rows = CurrentVersion.objects.filter(environment=qa, module__application=application)
    assert {row.module_id: row.version_id for row in rows} == expected
    assert {(row.changed_by_id, row.changed_at) for row in rows} == {
        (
            release_manager.pk,
            ModuleChange.objects.filter(environment=qa, version_id__in=expected.values()).first().at,
        )
    }
    # Each change is recorded with the version it replaced (PostgreSQL inserts them from arrays).
    before = dict(
        TagMember.objects.filter(tag__number="0.3", tag__application=application).values_list(
            "module_id", "version_id"
        )
    )
    changes = ModuleChange.objects.filter(environment=qa, version_id__in=expected.values())
    assert sorted(
        changes.values_list("module_id", "previous_version_id", "version_id", "kind", "user", "comment")
    ) == sorted(
        (module_id, before[module_id], version_id, "deploy", release_manager.pk, "Deployed 0.4")
        for module_id, version_id in expected.items()
    )
    # The other environments kept 0.3.
    untouched = CurrentVersion.objects.filter(environment=environments[2], module__application=application)
    assert not set(untouched.values_list("version_id", flat=True)) & set(expected.values())
