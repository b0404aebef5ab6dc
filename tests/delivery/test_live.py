"""Live state: what the machines of agent and webhook environments run (lifecycle.delivery.live).

The rows an agent's report writes (LiveApplication), its token's sign of life,
deployments and drifts are made directly here; the agent and its API have their
own tests, and tests/e2e/test_delivery.py runs a real agent.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from lifecycle.delivery.live import MISSED_POLLS, live_states
from lifecycle.models import (
    AgentToken,
    CurrentVersion,
    Delivery,
    Deployment,
    DeploymentItem,
    Drift,
    LiveApplication,
)
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db

OTHER = "f" * 64


@pytest.fixture
def world(environments):
    """Shop (modules Shop-Cart, Shop-Pay) released everywhere; Production delivers by agent, seen just now."""
    application, modules, tag = released_application("Shop", environments, module_names=("Cart", "Pay"))
    production = environments[-1]
    production.delivery = Delivery.AGENT
    production.save()
    token = seen(production, seconds_ago=1)
    return application, modules, production, token


_tokens = iter(range(10**6))


def seen(environment, *, seconds_ago=None, interval=5, revoked=False):
    number = next(_tokens)
    now = timezone.now()
    return AgentToken.objects.create(
        environment=environment,
        name=f"agent {number}",
        prefix=f"sba_{number}",
        token_hash=f"{number:064x}",
        interval_seconds=interval,
        last_seen_at=None if seconds_ago is None else now - timedelta(seconds=seconds_ago),
        revoked_at=now if revoked else None,
    )


def desired(application, environment) -> dict[str, str]:
    return dict(
        CurrentVersion.objects.filter(module__application=application, environment=environment).values_list(
            "module__name", "version__tree_hash"
        )
    )


def report(application, environment, *, applied=None, live=None, hook=None, generations=(0, 0), **extra):
    """The row an agent's report leaves: by default it applied and found exactly the desired state."""
    wanted = desired(application, environment)
    applied = wanted if applied is None else applied
    row, _ = LiveApplication.objects.update_or_create(
        environment=environment,
        application=application,
        defaults={
            "desired_generation": generations[0],
            "applied_generation": generations[1],
            "version": "0.3",
            "applied": applied,
            "live": applied if live is None else live,
            "hook_exit_status": hook,
            "reported_at": timezone.now(),
            **extra,
        },
    )
    return row


def deployment(application, environment, status, **extra):
    made = Deployment.objects.create(
        source=environment,
        target=environment,
        started_by=User.objects.get_or_create(username="starter")[0],
        started_at=timezone.now(),
        status=status,
        **extra,
    )
    DeploymentItem.objects.create(deployment=made, application=application)
    return made


def state(application, environment):
    return live_states([application], [environment])[application.pk, environment.pk]


def changed(application, environment, module="Shop-Cart"):
    """The desired state with one module's tree hash changed: what the agent applied before a switch."""
    return {**desired(application, environment), module: OTHER}


# Each state.


def test_record_environments_say_record(world, environments):
    application, _, _, _ = world
    cell = state(application, environments[0])
    assert (cell.state, cell.version, cell.reported_at, cell.drift_id) == ("record", None, None, None)


def test_delivered_when_applied_and_found_exactly_the_desired_state(world):
    application, _, production, _ = world
    row = report(application, production)
    cell = state(application, production)
    assert (cell.state, cell.version, cell.reported_at) == ("delivered", "0.3", row.reported_at)
    assert cell.label == "delivered" and cell.sign


@pytest.mark.parametrize(
    "situation",
    ["never reported", "applied other hashes", "a module missing", "retry pending", "deployment waiting"],
)
def test_delivering(world, situation):
    application, _, production, _ = world
    if situation == "applied other hashes":
        report(application, production, applied=changed(application, production))
    elif situation == "a module missing":
        report(application, production, applied={"Shop-Cart": desired(application, production)["Shop-Cart"]})
    elif situation == "retry pending":
        report(application, production, generations=(2, 1))
    elif situation == "deployment waiting":
        report(application, production)
        deployment(application, production, Deployment.Status.WAITING)
    assert state(application, production).state == "delivering"


def test_failed_when_the_last_deployment_ended_with_errors_before_the_agent_applied_it(world):
    application, _, production, _ = world
    report(application, production, applied=changed(application, production))
    deployment(application, production, Deployment.Status.FINISHED)
    deployment(application, production, Deployment.Status.ERRORS, finished_at=timezone.now())
    assert state(application, production).state == "failed"
    # The agent was only late: once it applies the desired state, the state is what it found.
    report(application, production)
    assert state(application, production).state == "delivered"


def test_only_the_last_deployment_counts(world):
    application, _, production, _ = world
    report(application, production, applied=changed(application, production))
    deployment(application, production, Deployment.Status.ERRORS)
    deployment(application, production, Deployment.Status.FINISHED)
    assert state(application, production).state == "delivering"


def test_failed_when_the_hook_failed_on_the_desired_state(world):
    application, _, production, _ = world
    report(application, production, hook=1)
    assert state(application, production).state == "failed"
    # A Retry pending: the failure was of the generation before.
    report(application, production, hook=1, generations=(1, 0))
    assert state(application, production).state == "delivering"
    report(application, production, hook=0, generations=(1, 1))
    assert state(application, production).state == "delivered"


def test_drift_when_the_files_found_differ_from_those_applied(world):
    application, _, production, _ = world
    report(application, production, live=changed(application, production))
    assert state(application, production).state == "drift"


def test_drift_while_a_drift_is_open_and_its_link(world):
    application, (cart, _), production, _ = world
    report(application, production)
    drift = open_drift(cart, production)
    cell = state(application, production)
    assert (cell.state, cell.drift_id) == ("drift", drift.pk)
    Drift.objects.filter(pk=drift.pk).update(resolved_at=timezone.now(), resolution=Drift.Resolution.GONE)
    assert state(application, production).drift_id is None


def open_drift(module, environment):
    current = CurrentVersion.objects.get(module=module, environment=environment)
    return Drift.objects.create(
        environment=environment,
        module=module,
        deployed_version=current.version,
        manifest={},
        tree_hash=OTHER,
        found_at=timezone.now(),
    )


# Offline, by time.


@pytest.mark.parametrize(
    ("tokens", "offline"),
    [
        ([], True),  # no token at all
        ([{"seconds_ago": None}], True),  # never seen
        ([{"seconds_ago": 3 * 5 + 2}], True),  # three polls missed
        ([{"seconds_ago": 3 * 5 - 2}], False),
        ([{"seconds_ago": 50, "interval": 30}], False),  # its own interval counts
        ([{"seconds_ago": 1, "revoked": True}], True),  # a revoked token is nobody's sign of life
        ([{"seconds_ago": 600}, {"seconds_ago": 2}], False),  # any of the environment's agents
    ],
)
def test_offline_after_three_missed_polls(environments, tokens, offline):
    application, _, _ = released_application("Shop", environments)
    production = environments[-1]
    production.delivery = Delivery.AGENT
    production.save()
    for token in tokens:
        seen(production, **token)
    report(application, production)
    states = live_states([application], [production])
    assert states[application.pk, production.pk].state == ("offline" if offline else "delivered")
    assert states.agents[production.pk].online is not offline
    assert MISSED_POLLS == 3


def test_the_agent_status_tells_when_it_was_last_seen(world):
    application, _, production, token = world
    older = seen(production, seconds_ago=100)
    agents = live_states([application], [production]).agents
    assert agents[production.pk].last_seen_at == token.last_seen_at != older.last_seen_at


# Precedence: offline, failed, delivering, drift, delivered.


def test_offline_comes_first(world):
    application, _, production, token = world
    report(application, production, hook=1, live=changed(application, production))
    AgentToken.objects.filter(pk=token.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    cell = state(application, production)
    assert cell.state == "offline"
    assert cell.version == "0.3" and cell.reported_at is not None  # what it last said is still shown


def test_failed_comes_before_delivering_and_drift(world):
    application, (cart, _), production, _ = world
    report(application, production, applied=changed(application, production), live={})
    open_drift(cart, production)
    deployment(application, production, Deployment.Status.ERRORS)
    assert state(application, production).state == "failed"


def test_delivering_comes_before_drift(world):
    """A new deployment overwrites the drift: the agent is busy with it."""
    application, (cart, _), production, _ = world
    report(application, production, live=changed(application, production))
    drift = open_drift(cart, production)
    publish_files(cart, production, {"main.py": "a hotfix"})
    cell = state(application, production)
    assert (cell.state, cell.drift_id) == ("delivering", drift.pk)  # the drift stays linked


# Webhook environments: the last deployment says it.


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "record"),
        ([Deployment.Status.FINISHED], "delivered"),
        ([Deployment.Status.FINISHED, Deployment.Status.WAITING], "delivering"),
        ([Deployment.Status.FINISHED, Deployment.Status.ERRORS], "failed"),
        ([Deployment.Status.ERRORS, Deployment.Status.WARNINGS], "delivered"),
    ],
)
def test_webhook_environments(environments, statuses, expected):
    application, _, _ = released_application("Shop", environments)
    production = environments[-1]
    production.delivery = Delivery.WEBHOOK
    production.save()
    for status in statuses:
        deployment(application, production, status)
    states = live_states([application], [production])
    assert states[application.pk, production.pk].state == expected
    assert states.agents == {}  # a webhook receiver does not poll: never "offline"


def test_other_applications_and_environments_do_not_leak_into_a_cell(world, environments):
    application, _, production, _ = world
    other, _, _ = released_application("Other", environments)
    report(application, production)
    report(other, production)
    deployment(other, production, Deployment.Status.WAITING)
    deployment(application, environments[1], Deployment.Status.ERRORS)
    states = live_states([application, other], environments)
    assert states[application.pk, production.pk].state == "delivered"
    assert states[other.pk, production.pk].state == "delivering"
    assert {states[other.pk, e.pk].state for e in environments[:-1]} == {"record"}


# A fixed number of queries.


def test_record_only_environments_cost_no_query(environments, django_assert_num_queries):
    application, _, _ = released_application("Shop", environments)
    with django_assert_num_queries(0):
        states = live_states([application], environments)
    assert {cell.state for cell in states.values()} == {"record"}


def test_it_reads_in_a_fixed_number_of_queries(environments, django_assert_num_queries):
    for environment in environments[2:]:
        environment.delivery = Delivery.AGENT
        environment.save()
        seen(environment, seconds_ago=1)

    def add(start, count):
        made = []
        for index in range(start, start + count):
            application, (cart, _), _ = released_application(f"App {index}", environments, ("A", "B"))
            for environment in environments[2:]:
                report(application, environment, live=changed(application, environment, f"App {index}-A"))
                deployment(application, environment, Deployment.Status.ERRORS)
                deployment(application, environment, Deployment.Status.WAITING)
            open_drift(cart, environments[-1])
            made.append(application)
        return made

    few = add(0, 2)
    with django_assert_num_queries(5):  # tokens, reports, desired hashes, deployments, drifts
        live_states(few, environments)
    many = few + add(2, 25)
    with django_assert_num_queries(5):
        states = live_states(many, environments)
    assert len(states) == len(many) * len(environments)
