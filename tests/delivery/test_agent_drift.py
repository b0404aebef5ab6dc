"""Drift uploads: the files an agent found in current/<module>/, read exactly like a published zip.

The same limits and hostile-zip refusals as any publish apply (tests/zips.py),
and a refused upload leaves nothing behind: no drift, no stored content, no
audit line. One drift stays open per module and environment, even when two
uploads race.
"""

import threading

import pytest
from django.db import connection, connections
from django.test import override_settings

from lifecycle.delivery import agent_tokens, reports
from lifecycle.models import AgentToken, AuditEvent, Blob, CurrentVersion, Drift
from lifecycle.snapshots import content_hash, tree_hash
from tests.delivery.agent_support import (
    assert_error,
    bearer,
    drift_url,
    make_agent_environment,
    new_token,
    post_zip,
)
from tests.factories import make_application, publish_files, released_application
from tests.zips import HOSTILE, hostile, make_zip

pytestmark = pytest.mark.django_db

EDITED = {"main.py": b"# edited on the server\n", "extra.cfg": b"debug = true\n"}


@pytest.fixture
def shop(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    production = make_agent_environment(environments[-1])
    raw = new_token(production)
    applied_current(cart, raw)
    return cart, production, raw


def applied_current(module, raw):
    """The agent's report that it applied the module's current version: a drift is uploaded after one."""
    token = AgentToken.objects.get(token_hash=agent_tokens.hash_token(raw))
    deployed = CurrentVersion.objects.get(environment=token.environment, module=module).version
    report = {
        "applications": [{"name": module.application.name, "applied": {module.name: deployed.tree_hash}}]
    }
    reports.record_report(token, report)


def nothing_kept(blobs_before):
    assert not Drift.objects.exists()
    assert Blob.objects.count() == blobs_before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DRIFT_FOUND).exists()


def test_an_upload_opens_a_drift_with_the_files_found(client, shop):
    cart, production, raw = shop
    response = post_zip(client, drift_url(cart.name), make_zip(EDITED), raw)
    assert response.status_code == 201, response.content
    drift = Drift.objects.get()
    assert response.json() == {"drift": drift.pk}
    deployed = CurrentVersion.objects.get(environment=production, module=cart).version
    manifest = {path: content_hash(data) for path, data in EDITED.items()}
    assert (drift.environment, drift.module, drift.deployed_version) == (production, cart, deployed)
    assert drift.manifest == manifest and drift.tree_hash == tree_hash(manifest)
    assert drift.resolved_at is None
    assert {bytes(Blob.objects.get(hash=digest).data) for digest in manifest.values()} == set(EDITED.values())
    event = AuditEvent.objects.get(action=AuditEvent.Action.DRIFT_FOUND)
    assert (event.environment, event.application, event.user_id) == ("Production", "Shop", None)
    assert event.username == f"agent:{AgentToken.objects.get().prefix}"
    assert cart.name in event.summary


def test_a_second_upload_updates_the_open_drift_and_is_audited_once(client, shop):
    cart, _, raw = shop
    first = post_zip(client, drift_url(cart.name), make_zip(EDITED), raw).json()["drift"]
    edited_again = EDITED | {"main.py": b"# edited twice\n"}
    second = post_zip(client, drift_url(cart.name), make_zip(edited_again), raw)
    assert second.status_code == 201 and second.json()["drift"] == first
    drift = Drift.objects.get()
    assert drift.manifest["main.py"] == content_hash(b"# edited twice\n")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DRIFT_FOUND).count() == 1


def test_a_resolved_drift_is_kept_and_a_new_one_opens(client, shop):
    cart, _, raw = shop
    post_zip(client, drift_url(cart.name), make_zip(EDITED), raw)
    Drift.objects.update(resolved_at="2026-12-01T10:00:00Z", resolution=Drift.Resolution.GONE)
    assert post_zip(client, drift_url(cart.name), make_zip(EDITED), raw).status_code == 201
    assert Drift.objects.count() == 2 and Drift.objects.filter(resolved_at__isnull=True).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DRIFT_FOUND).count() == 2


def test_the_deployed_files_are_no_drift_and_nothing_is_kept(client, shop):
    cart, production, raw = shop
    deployed = CurrentVersion.objects.get(environment=production, module=cart).version
    files = {row.path: bytes(row.blob.data) for row in deployed.files.select_related("blob")}
    blobs = Blob.objects.count()
    response = post_zip(client, drift_url(cart.name), make_zip(files), raw)
    assert response.status_code == 200
    assert response.json()["drift"] is None and "No drift" in response.json()["message"]
    nothing_kept(blobs)


def test_only_a_module_that_runs_there_may_drift(client, shop, environments):
    cart, _, raw = shop
    _, (elsewhere,) = make_application("Elsewhere")
    publish_files(elsewhere, environments[0], {"e.py": "e"})
    blobs = Blob.objects.count()
    for name in (elsewhere.name, "No-Such-Module"):
        error = assert_error(post_zip(client, drift_url(name), make_zip(EDITED), raw), 404, "not_found")
        assert "Development" not in error["message"]
    nothing_kept(blobs)


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_zip_is_refused_and_leaves_nothing(client, shop, case):
    cart, _, raw = shop
    blobs = Blob.objects.count()
    body, code = hostile(case)
    response = post_zip(client, drift_url(cart.name), body, raw)
    if code is None:  # Cut short, or a bomb: refused as corrupt, too large or a bomb, whichever shows first.
        assert response.status_code in (400, 413), response.content
        assert_error(response, response.status_code)
    else:
        assert_error(response, 400, code)
    nothing_kept(blobs)


def test_a_zip_over_the_limit_is_refused_with_413(client, shop):
    cart, _, raw = shop
    blobs = Blob.objects.count()
    body = make_zip({"big.bin": bytes(range(256)) * 400})
    with override_settings(MODULE_MAX_ARCHIVE_BYTES=len(body) - 1):
        assert_error(post_zip(client, drift_url(cart.name), body, raw), 413, "archive_too_large")
    with override_settings(MODULE_MAX_FILE_BYTES=1000):
        assert_error(post_zip(client, drift_url(cart.name), body, raw), 400, "file_too_large")
    with override_settings(MODULE_MAX_FILES=1):
        assert_error(post_zip(client, drift_url(cart.name), make_zip(EDITED), raw), 400, "too_many_files")
    nothing_kept(blobs)


def test_a_drift_is_sent_as_a_zip_body(client, shop):
    cart, _, raw = shop
    response = client.post(drift_url(cart.name), data={"file": "x"}, headers=bearer(raw))
    assert_error(response, 415, "unsupported_media_type")
    assert_error(client.get(drift_url(cart.name), headers=bearer(raw)), 405, "method_not_allowed")
    assert not Drift.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_two_uploads_at_once_leave_one_open_drift(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    production = make_agent_environment(environments[-1])
    token, raw = agent_tokens.create(production, "racer")
    applied_current(cart, raw)
    start = threading.Barrier(4)
    errors = []

    def upload(number):
        try:
            start.wait()
            reports.record_drift(token, cart.name, {"main.py": f"# edit {number}\n".encode()})
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Drift.objects.filter(resolved_at__isnull=True).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DRIFT_FOUND).count() == 1
