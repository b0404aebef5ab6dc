"""Personal tokens on /api/v1 act as their owner; a read-only one only reads; an expired one is refused."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lifecycle import tokens
from lifecycle.models import ApiToken, ModuleVersion
from tests.api.test_problems import assert_problem
from tests.factories import released_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

STATE = "/api/v1/applications/Shop"
PUBLISH = "/api/v1/modules/Shop-Cart/environments/Development/versions"


@pytest.fixture
def shop(environments):
    return released_application("Shop", environments, module_names=("Cart",))


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


def publish(client, raw):
    return client.post(PUBLISH, make_zip({"a.py": b"a"}), content_type="application/zip", headers=bearer(raw))


def test_a_token_acts_as_its_owner(client, developer, shop):
    _, raw = tokens.create_token(developer, "ci")
    assert publish(client, raw).status_code == 201
    assert ModuleVersion.objects.get(module__name="Shop-Cart", number=2).created_by == developer


def test_a_token_has_exactly_its_owners_access(client, viewer, shop):
    _, raw = tokens.create_token(viewer, "ci")
    assert client.get(STATE, headers=bearer(raw)).status_code == 200
    assert_problem(publish(client, raw), 403, "forbidden")


def test_a_read_only_token_reads(client, developer, shop):
    _, raw = tokens.create_token(developer, "dashboard", read_only=True)
    assert client.get(STATE, headers=bearer(raw)).status_code == 200
    archive = client.get("/api/v1/modules/Shop-Cart/versions/1/archive", headers=bearer(raw))
    assert archive.status_code == 200


def test_a_read_only_token_changes_nothing(client, developer, shop):
    _, raw = tokens.create_token(developer, "dashboard", read_only=True)
    before = ModuleVersion.objects.count()
    problem = assert_problem(publish(client, raw), 403, "read_only_token")
    assert "read-only" in problem["detail"]
    assert ModuleVersion.objects.count() == before


def test_an_expired_token_is_refused(client, developer, shop):
    token, raw = tokens.create_token(developer, "ci", expires_at=timezone.now() + timedelta(days=1))
    assert client.get(STATE, headers=bearer(raw)).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(STATE, headers=bearer(raw))
    problem = assert_problem(response, 401, "unauthorized")
    assert "expired" in problem["detail"]
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert_problem(publish(client, raw), 401, "unauthorized")
    assert tokens.authenticate(raw) is None


def test_an_expired_token_is_not_marked_as_used(client, developer, shop):
    token, raw = tokens.create_token(developer, "ci", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    client.get(STATE, headers=bearer(raw))
    assert ApiToken.objects.get(pk=token.pk).last_used_at is None


def test_a_token_cannot_be_made_already_expired(developer):
    with pytest.raises(ValueError):
        tokens.create_token(developer, "ci", expires_at=timezone.now() - timedelta(minutes=1))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "sb_x", "Bearer sb_" + "x" * 300]
)
def test_a_missing_or_malformed_token_is_refused(client, shop, authorization):
    response = client.get(STATE, headers={"Authorization": authorization})
    assert_problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")
