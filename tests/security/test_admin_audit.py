"""The admin's changes to users are in the audit trail, by the real actor, and never with password hashes.

Found by attacking as an outsider after issue 9: a staff member allowed to change users set the
superuser's password in the admin (and could then log in as them) and the audit trail recorded
nothing. Every other change of a user was recorded with the user's password hash in "before" and
"after", in a trail that can never be deleted.
"""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from lifecycle.models import AuditEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-Long-new-passw0rd-for-root"


@pytest.fixture
def staff(db):
    user = make_user("operator", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    return user


def test_setting_someone_elses_password_is_audited_by_the_staff_member(staff, client):
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(staff)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302
    root.refresh_from_db()
    assert root.check_password(NEW_PASSWORD)
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE)
    assert event.username == "operator" and event.user == staff
    assert "password" in event.summary and "root" in event.summary
    assert root.password not in json.dumps([event.before, event.after])


def test_a_refused_password_form_records_nothing(staff, client):
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(staff)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": NEW_PASSWORD, "password2": "something else", "usable_password": "true"},
    )
    assert response.status_code == 200
    assert not AuditEvent.objects.exists()


def test_changing_a_user_keeps_no_password_hash_in_the_trail(staff, client):
    victim = make_user("victim")
    client.force_login(staff)
    response = client.post(
        reverse("admin:auth_user_change", args=[victim.pk]),
        {
            "username": "victim",
            "email": "victim@example.com",
            "is_active": "on",
            "date_joined_0": "2024-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE)
    assert event.username == "operator"
    assert event.after["email"] == "victim@example.com"
    recorded = json.dumps([event.before, event.after])
    assert victim.password not in recorded
    assert "md5$" not in recorded and "pbkdf2" not in recorded
