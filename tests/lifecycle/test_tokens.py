import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from lifecycle import tokens
from lifecycle.models import ApiToken
from tests.factories import make_user

pytestmark = pytest.mark.django_db

RAW_TOKEN = re.compile(r"sb_[A-Za-z0-9_-]{40}")


def test_it_creates_a_token_and_stores_only_its_hash(developer):
    token, raw = tokens.create_token(developer, "  CI pipeline  ")
    stored = ApiToken.objects.get(pk=token.pk)
    assert RAW_TOKEN.fullmatch(raw)
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert stored.prefix == raw[:12]
    assert stored.name == "CI pipeline"
    assert raw not in {str(value) for value in ApiToken.objects.values().get().values()}


def test_it_makes_a_different_token_each_time(developer):
    _, first = tokens.create_token(developer, "one")
    _, second = tokens.create_token(developer, "two")
    assert first != second


def test_it_refuses_a_token_without_a_name(developer):
    with pytest.raises(ValueError):
        tokens.create_token(developer, "   ")
    assert not ApiToken.objects.exists()


def test_it_authenticates_the_tokens_user(developer):
    _, raw = tokens.create_token(developer, "CI")
    assert tokens.authenticate(raw) == developer


@pytest.mark.parametrize("raw", ["", "sb_not-a-token", "x" * 5000, "Bearer sb_"])
def test_it_refuses_unknown_tokens(developer, raw):
    tokens.create_token(developer, "CI")
    assert tokens.authenticate(raw) is None


def test_it_refuses_revoked_tokens(developer):
    token, raw = tokens.create_token(developer, "CI")
    assert tokens.revoke(token, developer) is True
    assert tokens.authenticate(raw) is None


def test_it_refuses_tokens_of_inactive_users(developer):
    _, raw = tokens.create_token(developer, "CI")
    developer.is_active = False
    developer.save()
    assert tokens.authenticate(raw) is None


def test_it_records_the_last_use_at_most_once_a_minute(developer, django_assert_num_queries):
    token, raw = tokens.create_token(developer, "CI")
    tokens.authenticate(raw)
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    with django_assert_num_queries(1):  # the lookup, no write
        tokens.authenticate(raw)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - timedelta(minutes=2))
    tokens.authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at > first_use - timedelta(seconds=1)


def test_it_keeps_the_first_revocation_time(developer):
    token, _ = tokens.create_token(developer, "CI")
    tokens.revoke(token, developer)
    revoked_at = token.revoked_at
    assert tokens.revoke(token, developer) is False
    token.refresh_from_db()
    assert token.revoked_at == revoked_at


def test_it_lets_only_the_owner_or_staff_revoke(developer, viewer):
    token, raw = tokens.create_token(developer, "CI")
    with pytest.raises(PermissionDenied):
        tokens.revoke(token, viewer)
    assert tokens.authenticate(raw) == developer
    admin = User.objects.create_superuser("root", password="x")
    assert tokens.revoke(token, admin) is True


# The profile page.


def test_it_lists_the_users_own_tokens(client, developer, viewer):
    tokens.create_token(developer, "Laptop")
    tokens.create_token(viewer, "Not yours")
    client.force_login(developer)
    response = client.get(reverse("tokens:list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Laptop" in html and "Not yours" not in html
    assert "no-store" in response["Cache-Control"]
    assert f'href="{reverse("tokens:list")}"' in html  # the nav link


def test_it_shows_a_new_token_once(client, developer):
    client.force_login(developer)
    response = client.post(reverse("tokens:create"), {"name": "CI pipeline"})
    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:list")
    html = client.get(reverse("tokens:list")).content.decode()
    raw = RAW_TOKEN.search(html).group()
    assert "Copy it now" in html
    assert tokens.authenticate(raw) == developer
    assert ApiToken.objects.get().name == "CI pipeline"
    assert raw not in client.get(reverse("tokens:list")).content.decode()


def test_it_refuses_a_nameless_token_with_the_error_shown(client, developer):
    client.force_login(developer)
    response = client.post(reverse("tokens:create"), {"name": ""})
    assert response.status_code == 422
    assert "form-errors" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token(client, developer):
    token, raw = tokens.create_token(developer, "CI")
    client.force_login(developer)
    response = client.post(reverse("tokens:revoke", args=[token.pk]), follow=True)
    assert response.redirect_chain == [(reverse("tokens:list"), 302)]
    assert "Revoked the token" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert tokens.authenticate(raw) is None


def test_it_answers_404_for_another_users_token(client, developer, viewer):
    token, raw = tokens.create_token(viewer, "Theirs")
    client.force_login(developer)
    assert client.post(reverse("tokens:revoke", args=[token.pk])).status_code == 404
    assert tokens.authenticate(raw) == viewer


def test_it_only_revokes_with_a_post(client, developer):
    token, _ = tokens.create_token(developer, "CI")
    client.force_login(developer)
    assert client.get(reverse("tokens:revoke", args=[token.pk])).status_code == 405
    assert client.get(reverse("tokens:create")).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_needs_a_login(client, environments):
    response = client.get(reverse("tokens:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_is_open_to_users_without_environment_access(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("tokens:list")).status_code == 200


# The admin.


@pytest.fixture
def admin_client(client, environments):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def test_it_lets_an_admin_create_a_token_for_a_user(admin_client, developer):
    response = admin_client.post(
        reverse("admin:lifecycle_apitoken_add"), {"user": developer.pk, "name": "Build server"}, follow=True
    )
    assert response.status_code == 200
    shown = " ".join(str(message) for message in response.context["messages"])
    raw = RAW_TOKEN.search(shown).group()
    assert tokens.authenticate(raw) == developer
    token = ApiToken.objects.get()
    assert token.name == "Build server" and token.prefix == raw[:12]


def test_it_never_shows_the_hash_in_the_admin(admin_client, developer):
    token, _ = tokens.create_token(developer, "CI")
    for url in [
        reverse("admin:lifecycle_apitoken_changelist"),
        reverse("admin:lifecycle_apitoken_change", args=[token.pk]),
        reverse("admin:lifecycle_apitoken_add"),
    ]:
        response = admin_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert token.token_hash not in html and "token_hash" not in html


def test_it_revokes_selected_tokens_from_the_admin(admin_client, developer):
    first, _ = tokens.create_token(developer, "one")
    second, _ = tokens.create_token(make_user("someone"), "two")
    _, kept_raw = tokens.create_token(developer, "kept")
    response = admin_client.post(
        reverse("admin:lifecycle_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Revoked 2 tokens." in response.content.decode()
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 2
    assert tokens.authenticate(kept_raw) == developer
