"""Real agent processes (`python agent/stageboard_agent.py --once`) against a live Stageboard.

Quality Assurance delivers through an agent; Shop (Core and Web) runs there as
0.3, and a newer Development is deployed into it as the browser does (the worker
runs it inline in tests). Each test runs the agent as an operator would, in a
subprocess, and judges by what is on disk and what Stageboard recorded.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import types

import pytest
from django.contrib.auth.models import User
from django.core.signals import request_started
from django.urls import reverse

from lifecycle.delivery import agent_tokens, desired, live
from lifecycle.delivery import drift as drift_actions
from lifecycle.deploying.running import launch, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import Blob, Delivery, Deployment, Drift, Environment, LiveApplication
from tests.agent.agent_double import AGENT_PATH
from tests.factories import make_environments, publish_files, released_application

NEWER = {"Shop-Core": b"# Shop-Core\nprint('newer')\n", "Shop-Web": b"# Shop-Web\nprint('newer')\n"}


@pytest.fixture
def setup(transactional_db, tmp_path):
    environments = make_environments()
    application, modules, _ = released_application("Shop", environments, module_names=("Core", "Web"))
    for module in modules:
        publish_files(module, environments[0], {"main.py": NEWER[module.name], "static/app.css": "body{}\n"})
    qa = environments[1]
    qa.delivery = Delivery.AGENT
    qa.save(update_fields=["delivery"])
    token_file = tmp_path / "token"
    token_file.write_text(agent_tokens.create(qa, "web-1")[1] + "\n")
    token_file.chmod(0o600)
    return types.SimpleNamespace(
        dev=environments[0],
        qa=qa,
        application=application,
        modules=modules,
        user=User.objects.create_superuser("release-manager", password="x"),
        token_file=token_file,
        root=tmp_path / "qa",
    )


def deploy_into_qa(setup) -> Deployment:
    """Tag & Deploy Shop from Development into Quality Assurance; the worker runs it (inline in tests)."""
    qa = Environment.objects.get(pk=setup.qa.pk)
    validation = validate(setup.dev, qa, [setup.application])
    deployment = start_deployment(
        setup.dev, qa, [setup.application], user=setup.user, fingerprint=validation.fingerprint
    )
    launch(deployment)
    deployment.refresh_from_db()
    return deployment


def run_agent(setup, server, *extra):
    done = subprocess.run(
        [sys.executable, str(AGENT_PATH), "--server", server, "--token-file", str(setup.token_file)]
        + ["--root", str(setup.root), "--once", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done


def current(setup, *parts):
    return setup.root.joinpath("Shop", "current", *parts)


def log_of(deployment):
    return "\n".join(line.message for line in deployment.log_lines.order_by("at", "id"))


@pytest.fixture
def requests_seen():
    """The requests the live server received, as (method, path, If-None-Match)."""
    seen = []

    def record(sender, environ, **kwargs):
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_IF_NONE_MATCH")))

    request_started.connect(record)
    yield seen
    request_started.disconnect(record)


def test_a_deployment_is_delivered_to_disk_and_finishes(setup, live_server):
    deployment = deploy_into_qa(setup)
    assert deployment.status == Deployment.Status.WAITING

    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    for module, content in NEWER.items():
        assert current(setup, module, "main.py").read_bytes() == content
        assert current(setup, module, "static", "app.css").read_bytes() == b"body{}\n"
    assert os.readlink(setup.root / "Shop" / "current").startswith("releases/")
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED, log_of(deployment)
    assert "downloaded Shop-Core" in log_of(deployment)
    assert "switched current to" in log_of(deployment)
    row = LiveApplication.objects.get(environment=setup.qa, application=setup.application)
    assert row.applied == row.live and set(row.applied) == {"Shop-Core", "Shop-Web"}
    cells = live.live_states([setup.application], [setup.qa])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DELIVERED


def test_a_second_pass_with_nothing_changed_downloads_nothing(setup, live_server, requests_seen):
    deploy_into_qa(setup)
    assert run_agent(setup, live_server.url).returncode == 0
    before = sorted(path.relative_to(setup.root) for path in setup.root.rglob("*"))
    requests_seen.clear()

    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    qa = Environment.objects.get(pk=setup.qa.pk)
    assert requests_seen == [("GET", "/api/v1/agent/state", desired.etag(qa))]
    assert "downloaded" not in done.stderr and "reported" not in done.stderr
    assert sorted(path.relative_to(setup.root) for path in setup.root.rglob("*")) == before


def test_only_the_changed_module_is_downloaded(setup, live_server, requests_seen):
    deploy_into_qa(setup)
    assert run_agent(setup, live_server.url).returncode == 0
    core = setup.modules[0]
    publish_files(core, setup.dev, {"main.py": "print('core only')\n"})
    deployment = deploy_into_qa(setup)
    requests_seen.clear()

    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    downloads = [path for method, path, _ in requests_seen if "/modules/" in path]
    assert [path.split("/")[5] for path in downloads] == ["Shop-Core", "Shop-Core"]
    assert current(setup, "Shop-Core", "main.py").read_bytes() == b"print('core only')\n"
    assert current(setup, "Shop-Web", "main.py").read_bytes() == NEWER["Shop-Web"]
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED, log_of(deployment)


def test_a_failing_hook_ends_the_deployment_with_errors_and_its_output(setup, live_server):
    deployment = deploy_into_qa(setup)

    hook = "echo \"migrating $STAGEBOARD_APPLICATION $STAGEBOARD_VERSION\"; echo 'column exists' >&2; exit 3"
    done = run_agent(setup, live_server.url, "--hook", hook)

    assert done.returncode == 0, done.stderr
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert deployment.status_label == "Finished with errors"
    text = log_of(deployment)
    assert "the hook exited with status 3" in text
    assert "migrating Shop" in text and "column exists" in text
    # The files are there all the same: the hook failed after the switch.
    assert current(setup, "Shop-Core", "main.py").read_bytes() == NEWER["Shop-Core"]


def test_a_hook_that_times_out_ends_the_deployment_with_errors(setup, live_server):
    deployment = deploy_into_qa(setup)

    done = run_agent(setup, live_server.url, "--hook", "echo started; sleep 60", "--hook-timeout", "0.5")

    assert done.returncode == 0, done.stderr
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert "the hook exited with status -9" in log_of(deployment)
    assert "the hook ran longer than 0.5 s and was killed" in log_of(deployment)


def test_a_deployment_no_agent_confirms_ends_with_errors_after_the_timeout(
    setup, live_server, client, settings
):
    settings.DELIVERY_TIMEOUT_SECONDS = 0
    deployment = deploy_into_qa(setup)
    assert deployment.status == Deployment.Status.WAITING
    client.force_login(setup.user)

    page = client.get(reverse("lifecycle:deployment", args=[deployment.pk]))

    assert page.status_code == 200
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert "did not confirm the delivery within 0 s" in log_of(deployment)
    assert "Finished with errors" in page.content.decode()
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.OFFLINE


def test_an_edited_file_is_reported_as_drift_and_uploaded(setup, live_server, requests_seen):
    deploy_into_qa(setup)
    assert run_agent(setup, live_server.url).returncode == 0
    edited = b"# Shop-Core\nprint('hotfixed on the server')\n"
    current(setup, "Shop-Core", "main.py").write_bytes(edited)
    requests_seen.clear()

    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    assert [(method, path) for method, path, _ in requests_seen] == [
        ("GET", "/api/v1/agent/state"),
        ("POST", "/api/v1/agent/reports"),
        ("POST", "/api/v1/agent/drift/Shop-Core"),
    ]
    drift = Drift.objects.get(environment=setup.qa, module=setup.modules[0], resolved_at__isnull=True)
    digest = hashlib.sha256(edited).hexdigest()
    assert drift.manifest == {"main.py": digest, "static/app.css": hashlib.sha256(b"body{}\n").hexdigest()}
    assert bytes(Blob.objects.get(hash=digest).data) == edited
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DRIFT

    # The next pass finds the same drift: Stageboard has its files, nothing is sent again.
    requests_seen.clear()
    assert run_agent(setup, live_server.url).returncode == 0
    assert [path for _, path, _ in requests_seen] == ["/api/v1/agent/state"]


def drift_after_an_edit(setup, server, edited):
    deploy_into_qa(setup)
    assert run_agent(setup, server).returncode == 0
    current(setup, "Shop-Core", "main.py").write_bytes(edited)
    assert run_agent(setup, server).returncode == 0
    return Drift.objects.get(environment=setup.qa, module=setup.modules[0], resolved_at__isnull=True)


def test_redeploy_has_the_agent_overwrite_the_drift(setup, live_server):
    drift = drift_after_an_edit(setup, live_server.url, b"print('edited')\n")
    drifted_release = os.readlink(setup.root / "Shop" / "current")

    drift_actions.redeploy(drift, setup.user)
    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    assert current(setup, "Shop-Core", "main.py").read_bytes() == NEWER["Shop-Core"]
    assert os.readlink(setup.root / "Shop" / "current") == drifted_release + ".2"
    row = LiveApplication.objects.get(environment=setup.qa, application=setup.application)
    assert row.applied == row.live and row.applied_generation == row.desired_generation == 1
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DELIVERED


def test_adopting_the_drift_keeps_the_files_on_disk_without_downloading_them(
    setup, live_server, requests_seen
):
    edited = b"print('hotfixed on the server')\n"
    drift = drift_after_an_edit(setup, live_server.url, edited)

    drift_actions.adopt(drift, setup.user, comment="adopted")
    requests_seen.clear()
    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    # The adopted version is what current holds: verified by its hash and copied, not downloaded.
    assert not [path for _, path, _ in requests_seen if "/modules/" in path]
    assert current(setup, "Shop-Core", "main.py").read_bytes() == edited
    row = LiveApplication.objects.get(environment=setup.qa, application=setup.application)
    assert row.applied == row.live
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DELIVERED


def test_adopting_one_drift_keeps_the_other_modules_drift_on_disk_and_open(setup, live_server):
    """Two modules of one application edited on the server: adopting one must not overwrite the other.

    The agent writes a new release for the adopted module; the other module's desired files did not
    change, so its edit stays in current and its drift stays open, to be adopted or redeployed over.
    """
    deploy_into_qa(setup)
    assert run_agent(setup, live_server.url).returncode == 0
    current(setup, "Shop-Core", "main.py").write_bytes(b"print('core fixed on the server')\n")
    current(setup, "Shop-Web", "main.py").write_bytes(b"print('web fixed on the server')\n")
    assert run_agent(setup, live_server.url).returncode == 0
    core_drift, web_drift = (
        Drift.objects.get(environment=setup.qa, module=module, resolved_at__isnull=True)
        for module in setup.modules
    )

    drift_actions.adopt(core_drift, setup.user, comment="adopted")
    done = run_agent(setup, live_server.url)

    assert done.returncode == 0, done.stderr
    assert current(setup, "Shop-Core", "main.py").read_bytes() == b"print('core fixed on the server')\n"
    assert current(setup, "Shop-Web", "main.py").read_bytes() == b"print('web fixed on the server')\n"
    assert "kept Shop-Web as found on disk" in done.stderr
    web_drift.refresh_from_db()
    assert web_drift.resolved_at is None
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DRIFT

    # Adopting the second one then delivers both fixes, and nothing drifts any more.
    drift_actions.adopt(web_drift, setup.user, comment="adopted too")
    assert run_agent(setup, live_server.url).returncode == 0
    assert current(setup, "Shop-Web", "main.py").read_bytes() == b"print('web fixed on the server')\n"
    cells = live.live_states([setup.application], [Environment.objects.get(pk=setup.qa.pk)])
    assert cells[setup.application.pk, setup.qa.pk].state == live.DELIVERED


def test_a_module_deleted_on_the_machine_is_a_drift_that_can_be_redeployed_over(setup, live_server, client):
    """Nothing to upload (an empty folder makes no zip), yet the grid says drift: it needs its drift page."""
    deploy_into_qa(setup)
    assert run_agent(setup, live_server.url).returncode == 0
    shutil.rmtree(current(setup, "Shop-Core"))
    assert run_agent(setup, live_server.url).returncode == 0

    drift = Drift.objects.get(environment=setup.qa, module=setup.modules[0], resolved_at__isnull=True)
    assert drift.manifest == {}
    client.force_login(setup.user)
    page = client.get(reverse("hotfixes:drift", args=[drift.pk])).content.decode()
    assert "main.py" in page and "deleted" in page

    drift_actions.redeploy(drift, setup.user)
    assert run_agent(setup, live_server.url).returncode == 0
    assert current(setup, "Shop-Core", "main.py").read_bytes() == NEWER["Shop-Core"]
    drift.refresh_from_db()
    assert drift.resolution == Drift.Resolution.REDEPLOYED
