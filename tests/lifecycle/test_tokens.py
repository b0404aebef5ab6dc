import hashlib
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from lifecycle import tokens
from lifecycle.audit import AuditMiddleware
from lifecycle.models import ApiToken, AuditEvent
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


def test_it_refuses_to_make_a_token_for_someone_else_within_a_request(rf, developer, viewer):
    """Whatever page or endpoint calls it, a signed-in user makes tokens for themselves only."""
    request = rf.post("/anywhere")
    request.user = developer

    with pytest.raises(PermissionDenied, match="Nobody makes an API token for someone else"):
        AuditMiddleware(lambda request: tokens.create_token(viewer, "CI"))(request)
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action="token_created").exists()

    token, _ = AuditMiddleware(lambda request: tokens.create_token(developer, "CI"))(request)
    assert token.user == developer


def test_it_records_the_owner_as_the_one_who_made_the_token(developer):
    tokens.create_token(developer, "CI")
    event = AuditEvent.objects.get(action="token_created")
    assert event.username == "developer" and event.user == developer


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


def test_it_shows_a_new_token_once_in_the_response_that_makes_it(client, developer):
    client.force_login(developer)
    response = client.post(reverse("tokens:create"), {"name": "CI pipeline"})
    assert response.status_code == 200  # the page itself, not a redirect
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = RAW_TOKEN.search(html).group()
    assert "Copy it now" in html
    assert f'data-list-url="{reverse("tokens:list")}"' in html  # a reload shows the list, not a new token
    assert tokens.authenticate(raw) == developer
    assert ApiToken.objects.get().name == "CI pipeline"
    assert raw not in client.get(reverse("tokens:list")).content.decode()


def test_it_keeps_the_new_token_nowhere(client, developer):
    """Not in the session row (signed, not encrypted), not in a message: only in the response."""
    from django.contrib.sessions.models import Session

    client.force_login(developer)
    response = client.post(reverse("tokens:create"), {"name": "CI pipeline"})
    raw = RAW_TOKEN.search(response.content.decode()).group()
    for session in Session.objects.all():
        assert raw not in str(session.get_decoded()) and raw not in session.session_data
    assert raw not in str(dict(client.session))
    assert raw not in str(response.cookies)


def test_it_refuses_a_nameless_token_with_the_error_shown(client, developer):
    client.force_login(developer)
    response = client.post(reverse("tokens:create"), {"name": ""})
    assert response.status_code == 422
    assert "form-errors" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_makes_a_read_only_token_that_expires_on_a_chosen_day(client, developer):
    client.force_login(developer)
    day = (timezone.now() + timedelta(days=30)).date()
    response = client.post(
        reverse("tokens:create"), {"name": "Dashboard", "read_only": "on", "expires_on": day.isoformat()}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert token.read_only
    assert token.expires_at == datetime.combine(day, time.min, tzinfo=UTC)
    html = client.get(reverse("tokens:list")).content.decode()
    assert "Read-only" in html and "expires" in html


def test_it_makes_a_read_write_token_that_never_expires_by_default(client, developer):
    client.force_login(developer)
    client.post(reverse("tokens:create"), {"name": "CI"})
    token = ApiToken.objects.get()
    assert (token.read_only, token.expires_at) == (False, None)


@pytest.mark.parametrize("expires_on", ["yesterday", "2000-01-01", "today"])
def test_it_refuses_an_expiry_that_is_not_in_the_future(client, developer, expires_on):
    client.force_login(developer)
    if expires_on == "today":
        expires_on = timezone.now().astimezone(UTC).date().isoformat()
    response = client.post(reverse("tokens:create"), {"name": "CI", "expires_on": expires_on})
    assert response.status_code == 422
    assert "form-errors" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_shows_an_expired_token_as_expired(client, developer):
    token, _ = tokens.create_token(developer, "Old", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(developer)
    assert "Expired" in client.get(reverse("tokens:list")).content.decode()


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


def _staff_with(*codenames):
    staff = make_user("staff", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return staff


def test_it_refuses_a_staff_user_minting_a_token_for_the_superuser(client, environments):
    """The attack: staff whose only permission is "add API token" made one for the superuser."""
    root = User.objects.create_superuser("root", password="x")
    client.force_login(_staff_with("add_apitoken"))
    url = reverse("admin:lifecycle_apitoken_add")
    assert client.get(url).status_code == 403
    response = client.post(url, {"user": root.pk, "name": "mine now"})
    assert response.status_code == 403
    assert not RAW_TOKEN.search(response.content.decode())
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action="token_created").exists()


def test_it_refuses_to_make_a_token_in_the_admin_even_for_a_superuser(admin_client, developer):
    url = reverse("admin:lifecycle_apitoken_add")
    response = admin_client.post(url, {"user": developer.pk, "name": "Build server"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert url not in index  # no "Add" link either


def test_it_never_hands_a_token_to_another_user_in_the_admin(client, developer, environments):
    root = User.objects.create_superuser("root", password="x")
    token, raw = tokens.create_token(developer, "CI")
    client.force_login(_staff_with("view_apitoken", "change_apitoken"))
    url = reverse("admin:lifecycle_apitoken_change", args=[token.pk])
    assert client.get(url).status_code == 200
    client.post(url, {"user": root.pk, "name": "renamed"})
    token.refresh_from_db()
    assert token.user == developer and token.name == "CI"
    assert tokens.authenticate(raw) == developer


def test_it_never_shows_the_hash_in_the_admin(admin_client, developer):
    token, _ = tokens.create_token(developer, "CI")
    for url in [
        reverse("admin:lifecycle_apitoken_changelist"),
        reverse("admin:lifecycle_apitoken_change", args=[token.pk]),
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


def test_it_names_the_staff_member_who_revoked_as_the_actor(client, developer, environments):
    token, raw = tokens.create_token(developer, "CI")
    staff = _staff_with("view_apitoken", "change_apitoken")
    client.force_login(staff)
    client.post(
        reverse("admin:lifecycle_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    assert tokens.authenticate(raw) is None
    event = AuditEvent.objects.get(action="token_revoked")
    assert event.username == "staff" and event.user == staff
    assert "of developer" in event.summary
