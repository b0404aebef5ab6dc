"""The agent protocol of docs/agent.md, end to end through the Django test client.

An agent's pass: poll the desired state (304 when unchanged), fetch the manifest
and archive of what changed, report what it applied and found; a deployment
waiting for the environment finishes from the reports, and a webhook receiver's
answer ends it too. A real agent process against a live server is in tests/agent/.
"""

import hashlib
import io
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifecycle.delivery import confirming, desired
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import (
    AgentToken,
    CurrentVersion,
    Delivery,
    Deployment,
    DeploymentLogLine,
    Drift,
    Environment,
    LiveApplication,
    ModuleVersion,
)
from lifecycle.snapshots import content_hash, tree_hash
from lifecycle.tagging import tag_environment
from tests.delivery.agent_support import (
    archive_url,
    assert_error,
    bearer,
    delivery_url,
    drift_url,
    make_agent_environment,
    manifest_url,
    new_token,
    post_json,
    post_zip,
    reports_url,
    state_url,
)
from tests.factories import make_application, publish_files, released_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments):
    """Shop (Shop-Cart, Shop-Web) runs 0.3 everywhere; Production delivers by agent."""
    application, modules, _ = released_application("Shop", environments, module_names=("Cart", "Web"))
    make_agent_environment(environments[-1])
    return application, modules


@pytest.fixture
def raw(shop, environments):
    return new_token(environments[-1])


def get_state(client, raw, etag=None):
    headers = bearer(raw) | ({"If-None-Match": etag} if etag else {})
    return client.get(state_url(), headers=headers)


def deploy(source, target, application, user) -> Deployment:
    """A real deployment, run inline as the worker runs it."""
    validation = validate(source, target, [application])
    deployment = start_deployment(
        source, target, [application], user=user, fingerprint=validation.fingerprint
    )
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    return deployment


def report_for(state, *, deployment="same", hook=None, log=(), live=None, generation=None):
    """The report of an agent that applied `state` exactly (as docs/agent.md shows it)."""
    applications = []
    for application in state["applications"]:
        applied = {module["name"]: module["tree_hash"] for module in application["modules"]}
        applications.append(
            {
                "name": application["name"],
                "deployment": application["deployment"] if deployment == "same" else deployment,
                "generation": application["generation"] if generation is None else generation,
                "version": application["version"],
                "applied": applied,
                "live": applied | (live or {}),
                "hook": hook,
                "log": list(log),
            }
        )
    return {"interval": 5, "agent": "stageboard-agent/1 on web-1", "applications": applications}


# The desired state.


def test_the_state_lists_what_runs_there_as_the_grid_shows_it(client, raw, shop, environments):
    _, (cart, web) = shop
    production = environments[-1]
    response = get_state(client, raw)
    assert response.status_code == 200
    production.refresh_from_db()
    assert response["ETag"] == f'"{production.pk}-{production.state_revision}"'
    versions = {
        current.module.name: current.version
        for current in CurrentVersion.objects.filter(environment=production).select_related(
            "module", "version"
        )
    }
    assert response.json() == {
        "environment": "Production",
        "revision": production.state_revision,
        "applications": [
            {
                "name": "Shop",
                "version": "0.3",
                "deployment": None,
                "generation": 0,
                "modules": [
                    {"name": name, "version": versions[name].number, "tree_hash": versions[name].tree_hash}
                    for name in ("Shop-Cart", "Shop-Web")
                ],
            }
        ],
    }


def test_an_unchanged_state_answers_304_with_no_body(client, raw):
    first = get_state(client, raw)
    etag = first["ETag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = get_state(client, raw, sent)
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again["ETag"] == etag
    assert get_state(client, raw, '"0-0"').status_code == 200


def test_the_304_reads_only_the_token_and_its_environment(client, raw, django_assert_max_num_queries):
    etag = get_state(client, raw)["ETag"]
    AgentToken.objects.update(last_seen_at=None)
    # The token joined with its environment, and the once-a-second renewal of its sign of life.
    with django_assert_max_num_queries(2) as queries:
        assert get_state(client, raw, etag).status_code == 304
    assert "lifecycle_agenttoken" in queries.captured_queries[0]["sql"]
    assert "UPDATE" in queries.captured_queries[1]["sql"]
    with django_assert_max_num_queries(1):  # Seen within the second: the one read.
        assert get_state(client, raw, etag).status_code == 304


def test_a_change_of_what_should_run_changes_the_etag(client, raw, shop, environments, release_manager):
    _, (cart, _) = shop
    etag = get_state(client, raw)["ETag"]
    hotfix = publish_files(cart, environments[-1], {"main.py": "fixed in production"}, user=release_manager)
    response = get_state(client, raw, etag)
    assert response.status_code == 200 and response["ETag"] != etag
    application = response.json()["applications"][0]
    assert application["version"] == "0.3+"  # As the grid shows a hotfix on top of 0.3.
    assert application["modules"][0] == {
        "name": "Shop-Cart",
        "version": hotfix.number,
        "tree_hash": hotfix.tree_hash,
    }


def test_tagging_what_runs_there_changes_the_etag_and_the_version(
    client, raw, shop, environments, release_manager
):
    """The same files under a new number: the agents are told the version the grid now shows."""
    application, (cart, _) = shop
    publish_files(cart, environments[-1], {"main.py": "fixed in production"}, user=release_manager)
    etag = get_state(client, raw)["ETag"]
    tag_environment(application, environments[-1], "0.3.1", user=release_manager)
    response = get_state(client, raw, etag)
    assert response.status_code == 200 and response["ETag"] != etag
    assert response.json()["applications"][0]["version"] == "0.3.1"


def test_the_state_names_the_last_deployment_and_the_generation(
    client, raw, shop, environments, release_manager
):
    application, (cart, _) = shop
    pre, production = environments[2], environments[3]
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    deployment = deploy(pre, production, application, release_manager)
    assert deployment.status == Deployment.Status.WAITING
    etag = get_state(client, raw)["ETag"]
    # Retry and Redeploy ask the agent to apply again: a new generation, and a new revision.
    confirming.request_reapply(production, [application.pk], release_manager)
    state = get_state(client, raw).json()
    assert state["applications"][0]["deployment"] == deployment.pk
    assert state["applications"][0]["version"] == "0.3.1"
    assert state["applications"][0]["generation"] == 1
    assert get_state(client, raw, etag).status_code == 200


# The current versions, the grid's reading (tags, their members, the current versions, open
# hotfixes, and two for cells that differ from their tag), the last deployments, the generations.
STATE_QUERIES = 9


def test_the_state_is_read_in_a_fixed_number_of_queries(environments, django_assert_max_num_queries):
    production = make_agent_environment(environments[-1])
    released_application("Shop", environments, module_names=("Cart",))
    with django_assert_max_num_queries(STATE_QUERIES):
        desired.desired_state(production)
    for index in range(6):
        application, modules = make_application(f"App{index}", ("A", "B", "C"))
        for module in modules:
            publish_files(module, production, {"x.py": f"{module.name}"})  # Untagged: they show "–+".
    production.refresh_from_db()
    with django_assert_max_num_queries(STATE_QUERIES):
        desired.desired_state(production)
    state = desired.desired_state(production)
    assert [a["name"] for a in state["applications"]] == [
        "App0",
        "App1",
        "App2",
        "App3",
        "App4",
        "App5",
        "Shop",
    ]
    assert all(len(a["modules"]) == 3 for a in state["applications"][:6])
    assert [a["version"] for a in state["applications"]] == ["–+"] * 6 + ["0.3"]


# Manifests and archives.


def test_the_manifest_and_archive_of_a_current_version_agree(client, raw, shop, environments):
    _, (cart, _) = shop
    publish_files(
        cart, environments[-1], {"main.py": "v2", "lib/util.py": "u = 1\n", "logo.png": b"\x89PNG\0\xff"}
    )
    version = CurrentVersion.objects.get(environment=environments[-1], module=cart).version
    manifest = client.get(manifest_url(cart.name, version.number), headers=bearer(raw))
    assert manifest.status_code == 200
    body = manifest.json()
    assert body["module"] == cart.name and body["version"] == version.number
    assert body["tree_hash"] == version.tree_hash
    archive = client.get(archive_url(cart.name, version.number), headers=bearer(raw))
    assert archive.status_code == 200 and archive["Content-Type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(archive.content))
    contents = {name: files.read(name) for name in files.namelist()}
    assert body["files"] == [
        {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for path, data in sorted(contents.items())
    ]
    assert sorted(contents) == ["lib/util.py", "logo.png", "main.py"]


def test_only_a_version_current_there_is_served(client, raw, shop, environments, release_manager):
    _, (cart, _) = shop
    dev, production = environments[0], environments[-1]
    old = CurrentVersion.objects.get(environment=production, module=cart).version
    publish_files(cart, production, {"main.py": "newer"}, user=release_manager)
    only_in_dev = publish_files(cart, dev, {"main.py": "dev only"}, user=release_manager)
    other, (elsewhere,) = make_application("Other")
    publish_files(elsewhere, dev, {"o.py": "o"})
    for module_name, number in (
        (cart.name, old.number),  # Ran here before: no longer.
        (cart.name, only_in_dev.number),  # Current in Development, not here.
        (elsewhere.name, 1),  # A module that does not run here at all.
        ("No-Such-Module", 1),
        (cart.name, 999),
    ):
        for url in (manifest_url(module_name, number), archive_url(module_name, number)):
            error = assert_error(client.get(url, headers=bearer(raw)), 404, "not_found")
            assert "Development" not in error["message"]
    assert ModuleVersion.objects.filter(module=cart).count() == 3


# Reports.


def test_a_deployment_waits_for_the_agent_and_finishes_from_its_report(
    client, raw, shop, environments, release_manager
):
    application, (cart, web) = shop
    pre, production = environments[2], environments[3]
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    deployment = deploy(pre, production, application, release_manager)
    assert deployment.status == Deployment.Status.WAITING

    state = get_state(client, raw).json()
    changed = next(m for m in state["applications"][0]["modules"] if m["name"] == cart.name)
    assert client.get(manifest_url(cart.name, changed["version"]), headers=bearer(raw)).status_code == 200
    assert client.get(archive_url(cart.name, changed["version"]), headers=bearer(raw)).status_code == 200
    report = report_for(
        state,
        hook={"exit_status": 0, "output": "restarted shop\n"},
        log=[f"downloaded {cart.name} v{changed['version']} (1 files)", "switched current to 0.3.1-ab12cd34"],
    )
    response = post_json(client, reports_url(), report, raw)
    assert response.status_code == 200, response.content
    assert response.json() == {"drift_uploads": []}

    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED
    messages = list(deployment.log_lines.values_list("message", flat=True))
    assert (
        f"stageboard-agent/1 on web-1: Shop: downloaded {cart.name} v{changed['version']} (1 files)"
        in messages
    )
    assert any("the hook exited with status 0" in m and "restarted shop" in m for m in messages)
    live = LiveApplication.objects.get(environment=production, application=application)
    assert live.deployment == deployment and live.version == "0.3.1"
    assert live.applied == {m["name"]: m["tree_hash"] for m in state["applications"][0]["modules"]}
    assert (live.hook_exit_status, live.hook_output) == (0, "restarted shop\n")
    assert AgentToken.objects.get().interval_seconds == 5


def test_a_failing_hook_ends_the_deployment_with_errors_and_its_output(
    client, raw, shop, environments, release_manager
):
    application, (cart, _) = shop
    pre, production = environments[2], environments[3]
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    deployment = deploy(pre, production, application, release_manager)
    state = get_state(client, raw).json()
    report = report_for(state, hook={"exit_status": 3, "output": "x" * 5000 + "service failed to start"})
    assert post_json(client, reports_url(), report, raw).status_code == 200
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    line = deployment.log_lines.get(
        level=DeploymentLogLine.Level.ERROR, message__contains="exited with status 3"
    )
    assert line.message.endswith("service failed to start")
    live = LiveApplication.objects.get(environment=production, application=application)
    assert len(live.hook_output) == 4096 and live.hook_exit_status == 3


def test_reports_upsert_one_row_and_keep_the_hook_of_the_last_apply(client, raw, shop, environments):
    application, _ = shop
    production = environments[-1]
    state = get_state(client, raw).json()
    assert (
        post_json(
            client, reports_url(), report_for(state, hook={"exit_status": 1, "output": "bad"}), raw
        ).status_code
        == 200
    )
    LiveApplication.objects.filter(environment=production).update(desired_generation=7)
    # A sign of life: the same files, no hook run. The last apply's outcome stays.
    assert post_json(client, reports_url(), report_for(state), raw).status_code == 200
    live = LiveApplication.objects.get(environment=production, application=application)
    assert (live.hook_exit_status, live.hook_output, live.desired_generation) == (1, "bad", 7)
    # A new apply (another generation) without a hook: nothing failed in it.
    assert post_json(client, reports_url(), report_for(state, generation=7), raw).status_code == 200
    live = LiveApplication.objects.get(environment=production, application=application)
    assert (live.hook_exit_status, live.hook_output, live.applied_generation, live.desired_generation) == (
        None,
        "",
        7,
        7,
    )
    assert LiveApplication.objects.count() == 1


def test_a_report_needs_a_fixed_number_of_queries(client, environments, django_assert_max_num_queries):
    production = make_agent_environment(environments[-1])
    for index in range(8):
        released_application(f"App{index}", environments, module_names=("A", "B"))
    raw = new_token(production)
    state = get_state(client, raw).json()
    report = report_for(state, log=["one", "two"])
    post_json(client, reports_url(), report, raw)
    with CaptureQueriesContext(connection) as queries:
        assert post_json(client, reports_url(), report, raw).status_code == 200
    few_apps = report | {"applications": report["applications"][:1]}
    with CaptureQueriesContext(connection) as fewer:
        assert post_json(client, reports_url(), few_apps, raw).status_code == 200
    assert len(queries.captured_queries) == len(fewer.captured_queries)
    assert len(queries.captured_queries) <= 14


def test_unknown_applications_are_ignored_and_named(client, raw, shop, environments):
    other, (module,) = make_application("Elsewhere")
    publish_files(module, environments[0], {"e.py": "e"})  # Runs in Development only.
    state = get_state(client, raw).json()
    report = report_for(state)
    report["applications"] += [{"name": "Elsewhere"}, {"name": "Never-Heard-Of"}]
    response = post_json(client, reports_url(), report, raw)
    assert response.status_code == 200
    answer = response.json()
    assert answer["drift_uploads"] == []
    assert answer["ignored"] == ["Elsewhere", "Never-Heard-Of"]
    assert "Production does not run" in answer["message"]
    assert list(LiveApplication.objects.values_list("application__name", flat=True)) == ["Shop"]


def test_a_deployment_of_another_environment_is_not_linked_nor_logged(
    client, raw, shop, environments, release_manager
):
    application, (cart, _) = shop
    dev, qa = environments[0], environments[1]
    publish_files(cart, dev, {"main.py": "dev"}, user=release_manager)
    elsewhere = deploy(dev, qa, application, release_manager)
    lines = elsewhere.log_lines.count()
    state = get_state(client, raw).json()
    assert (
        post_json(
            client, reports_url(), report_for(state, deployment=elsewhere.pk, log=["hi"]), raw
        ).status_code
        == 200
    )
    assert LiveApplication.objects.get().deployment is None
    assert elsewhere.log_lines.count() == lines


# Drift, as reports name it.


def test_a_report_asks_for_the_files_of_a_drifted_module_once(client, raw, shop):

    _, (cart, _) = shop
    state = get_state(client, raw).json()
    edited = {"main.py": b"edited on the server\n"}
    live = tree_hash({path: content_hash(data) for path, data in edited.items()})
    report = report_for(state, live={cart.name: live})
    assert post_json(client, reports_url(), report, raw).json()["drift_uploads"] == [cart.name]
    assert post_zip(client, drift_url(cart.name), make_zip(edited), raw).status_code == 201
    # Received: not asked for again while the machine holds the same files.
    assert post_json(client, reports_url(), report, raw).json()["drift_uploads"] == []
    # Edited again: asked for again.
    again = report_for(state, live={cart.name: "e" * 64})
    assert post_json(client, reports_url(), again, raw).json()["drift_uploads"] == [cart.name]
    # The deployed files are back: the drift is gone by itself.
    assert post_json(client, reports_url(), report_for(state), raw).json()["drift_uploads"] == []
    drift = Drift.objects.get()
    assert drift.resolved_at is not None and drift.resolution == Drift.Resolution.GONE


def test_no_upload_is_asked_for_while_the_agent_has_not_applied_what_should_run(client, raw, shop):
    _, (cart, _) = shop
    state = get_state(client, raw).json()
    report = report_for(state, live={cart.name: "e" * 64})
    report["applications"][0]["applied"][cart.name] = "d" * 64  # An older release it is about to replace.
    assert post_json(client, reports_url(), report, raw).json()["drift_uploads"] == []


# A webhook receiver's answer.


@pytest.fixture
def webhook_deployment(environments, release_manager):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    pre = environments[2]
    production = make_agent_environment(environments[-1], Delivery.WEBHOOK)
    Environment.objects.filter(pk=production.pk).update(
        webhook_url="http://127.0.0.1:9/hook", webhook_secret="s"
    )
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    deployment = deploy(pre, production, application, release_manager)
    assert deployment.status == Deployment.Status.WAITING
    return deployment, new_token(production)


def test_a_receiver_confirms_a_delivery(client, webhook_deployment):
    deployment, raw = webhook_deployment
    response = post_json(
        client, delivery_url(deployment.pk), {"status": "succeeded", "output": "deployed"}, raw
    )
    assert response.status_code == 200, response.content
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED
    assert deployment.log_lines.filter(message__contains="deployed").exists()
    # Answered twice: the deployment no longer waits.
    again = post_json(client, delivery_url(deployment.pk), {"status": "failed"}, raw)
    assert_error(again, 409, "not_waiting")
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED


def test_a_receiver_reports_a_failed_delivery(client, webhook_deployment):
    deployment, raw = webhook_deployment
    output = "\x00" + "y" * 6000 + "disk full"
    response = post_json(client, delivery_url(deployment.pk), {"status": "failed", "output": output}, raw)
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert deployment.log_lines.filter(message__endswith="disk full").exists()


@pytest.mark.parametrize(
    "payload",
    [{"status": "done"}, {"status": True}, {"output": "x"}, {"status": "failed", "output": 5}, [], "failed"],
)
def test_a_receiver_answer_is_checked(client, webhook_deployment, payload):
    deployment, raw = webhook_deployment
    assert_error(post_json(client, delivery_url(deployment.pk), payload, raw), 400)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING


def test_a_receiver_answer_with_an_unknown_status_is_named(client, webhook_deployment):
    """ "done" is a string: the refusal names what was sent, not its type."""
    deployment, raw = webhook_deployment
    error = assert_error(post_json(client, delivery_url(deployment.pk), {"status": "done"}, raw), 400)
    assert "not 'done'" in error["message"], error
    error = assert_error(post_json(client, delivery_url(deployment.pk), {"status": 1}, raw), 400)
    assert "not a number" in error["message"], error


def test_a_receiver_answers_only_for_its_environment(client, webhook_deployment, environments):
    deployment, _ = webhook_deployment
    qa = make_agent_environment(environments[1], Delivery.WEBHOOK)
    assert_error(
        post_json(client, delivery_url(deployment.pk), {"status": "failed"}, new_token(qa)), 404, "not_found"
    )
    assert_error(
        post_json(client, delivery_url(999999), {"status": "failed"}, new_token(qa)), 404, "not_found"
    )
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING


def test_a_module_gone_from_the_machine_is_not_asked_for(client, raw, shop):
    """Its files cannot be uploaded (a zip of nothing is refused): no upload is asked for."""
    _, (cart, _) = shop
    state = get_state(client, raw).json()
    report = report_for(state, live={cart.name: tree_hash({})})
    assert post_json(client, reports_url(), report, raw).json()["drift_uploads"] == []
