import csv
import io
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from lifecycle.blocking import block, unblock
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import AccessLevel, AuditEvent, Environment, EnvironmentAccess, ImmutableError
from lifecycle.tokens import create_token, revoke
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db


def actions():
    return list(AuditEvent.objects.order_by("at", "id").values_list("action", flat=True))


def test_it_records_who_did_what_from_where(client, developer, environments):
    application, (core,), _ = released_application("Shop", environments)
    client.force_login(developer)
    client.get(reverse("lifecycle:editor", args=[core.pk, environments[1].pk]))
    client.post(
        reverse("lifecycle:editor-publish", args=[core.pk, environments[1].pk]),
        {"comment": "x"},
        REMOTE_ADDR="203.0.113.7",
    )
    # Identical content: no event. Now a real change, through the zip-less CLI path of publish().
    publish_files(core, environments[1], {"main.py": "fix"}, user=developer)
    publish_event = AuditEvent.objects.filter(action="publish", username="developer").get()
    assert publish_event.username == "developer" and publish_event.environment == "Quality Assurance"
    assert publish_event.application == "Shop"
    assert publish_event.before == {"module": "Shop-Core", "version": 1}
    assert publish_event.after["version"] == 2
    assert AuditEvent.objects.filter(action="hotfix_opened").exists()


def test_it_records_tags_deployments_blocks_and_tokens(release_manager, environments):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[2], {"main.py": "fix"}, user=release_manager)
    validation = validate(environments[2], environments[3], [application])
    run_deployment(
        start_deployment(
            environments[2],
            environments[3],
            [application],
            user=release_manager,
            fingerprint=validation.fingerprint,
        ).pk
    )
    block(application, environments[3], release_manager, "Freeze")
    unblock(application, environments[3], release_manager, "Thawed")
    token, _ = create_token(release_manager, "ci")
    revoke(token, release_manager)
    recorded = actions()
    for action in [
        "publish",
        "hotfix_opened",
        "deploy_started",
        "tag",
        "deploy_finished",
        "block",
        "unblock",
        "token_created",
        "token_revoked",
    ]:
        assert action in recorded
    started = AuditEvent.objects.get(action="deploy_started")
    assert started.after["findings"] == [] and started.after["deploy_anyway"] is False


def test_it_records_failed_logins_and_throttles_them(client, viewer, settings):
    settings.LOGIN_FAILURES_ALLOWED = 3
    for _ in range(3):
        response = client.post(
            reverse("login"), {"username": "viewer", "password": "wrong"}, REMOTE_ADDR="198.51.100.9"
        )
        assert response.status_code == 200
    failures = AuditEvent.objects.filter(action="login_failed")
    assert failures.count() == 3 and failures.first().ip == "198.51.100.9"
    # Whoever failed is unknown: the name tried is not recorded as the one who acted.
    assert failures.first().username == "" and failures.first().after == {"username": "viewer"}
    # Even the right password is refused from that address while locked, and the refusal says so.
    response = client.post(
        reverse("login"), {"username": "viewer", "password": "pw-viewer"}, REMOTE_ADDR="198.51.100.9"
    )
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The lock is the guesser's: the person, from their own address, still logs in.
    response = client.post(reverse("login"), {"username": "viewer", "password": "pw-viewer"})
    assert response.status_code == 302


def test_it_lets_a_user_log_in_below_the_limit(client, viewer):
    client.post(reverse("login"), {"username": "viewer", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "viewer", "password": "pw-viewer"})
    assert response.status_code == 302


def test_it_records_admin_changes_with_before_and_after(client, environments):
    root = User.objects.create_superuser("root", password="x")
    client.force_login(root)
    qa = environments[1]
    client.post(
        reverse("admin:lifecycle_environment_change", args=[qa.pk]),
        {
            "name": "QA",
            "position": "2",
            "delivery": "record",
            "access-TOTAL_FORMS": "0",
            "access-INITIAL_FORMS": "0",
        },
    )
    event = AuditEvent.objects.get(action="admin_change")
    assert event.before["name"] == "Quality Assurance" and event.after["name"] == "QA"
    group = Group.objects.create(name="Auditors")
    client.post(
        reverse("admin:lifecycle_environmentaccess_add"),
        {
            "group": group.pk,
            "environment": qa.pk,
            "level": AccessLevel.FULL,
        },
    )
    assert EnvironmentAccess.objects.filter(group=group).exists()
    assert AuditEvent.objects.filter(action="admin_add", environment="QA").exists()


def test_it_cannot_be_changed_or_deleted(client, release_manager, environments):
    event = AuditEvent.objects.create(at="2026-11-29T10:00:00Z", action="tag", summary="x")
    with pytest.raises(ImmutableError):
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(ImmutableError):
        event.delete()
    root = User.objects.create_superuser("root", password="x")
    client.force_login(root)
    assert (
        client.post(
            reverse("admin:lifecycle_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert client.get(reverse("admin:lifecycle_auditevent_add")).status_code == 403


def test_it_shows_filters_and_exports_the_trail(client, release_manager, viewer, environments):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "=cmd|' /C calc'!A0"}, user=release_manager, comment="")
    block(application, environments[3], release_manager, '=HYPERLINK("http://x")')
    client.force_login(release_manager)
    html = client.get(reverse("lifecycle:audit"), {"action": "block"}).content.decode()
    assert 'data-action="block"' in html and 'data-action="publish"' not in html
    response = client.get(reverse("lifecycle:audit-export"), {"user": "release-manager"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["at", "action", "user"]
    assert {row[1] for row in rows[1:]} == {"publish", "block"}
    assert all(not row[6].startswith("=") for row in rows[1:])
    client.force_login(viewer)
    assert client.get(reverse("lifecycle:audit")).status_code == 403
    assert client.get(reverse("lifecycle:audit-export")).status_code == 403


def test_it_protects_every_csv_column_from_formulas(client, environments):
    """User, environment and application names are written by people too; so are tabs and CRs."""
    for start in ["=", "+", "-", "@", "\t", "\r"]:
        AuditEvent.objects.create(
            at="2026-11-29T10:00:00Z",
            action="tag",
            username=f"{start}HYPERLINK(1)",
            environment=f"{start}Env",
            application=f"{start}App",
            summary=f"{start}cmd",
            before={"name": f"{start}x"},
        )
    client.force_login(User.objects.create_superuser("root", password="x"))
    response = client.get(reverse("lifecycle:audit-export"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert len(rows) == 7
    for row in rows[1:]:
        assert row[2].startswith("'") and row[4].startswith("'") and row[5].startswith("'")
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


@pytest.fixture
def dev_auditor(environments):
    """`full` on Development, nothing anywhere else."""
    return make_user("dev-auditor", {environments[0]: AccessLevel.FULL})


def test_it_shows_an_auditor_only_the_environments_they_can_view(client, dev_auditor, environments):
    application, (core,), _ = released_application("Shop", environments)
    release_manager = make_user("rm", {e: AccessLevel.FULL for e in environments})
    publish_files(core, environments[0], {"main.py": "dev"}, user=release_manager)
    publish_files(core, environments[3], {"main.py": "prod fix"}, user=release_manager)
    client.post(reverse("login"), {"username": "rm", "password": "wrong"}, REMOTE_ADDR="203.0.113.9")
    token, _ = create_token(release_manager, "ci")
    revoke(token, release_manager)
    AuditEvent.objects.create(at="2026-11-29T10:00:00Z", action="admin_change", summary="Changed user rm")
    assert AuditEvent.objects.filter(environment="Production").exists()

    client.force_login(dev_auditor)
    html = client.get(reverse("lifecycle:audit")).content.decode()
    response = client.get(reverse("lifecycle:audit-export"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    assert {row[4] for row in rows} == {"Development"}
    # Development's publish and tag; no login, token or admin event, nor the failed login's address.
    assert {row[1] for row in rows} == {"publish", "tag"}
    assert "Production" not in html and "203.0.113.9" not in html
    assert set(re.findall(r'data-action="(\w+)"', html)) == {"publish", "tag"}
    # Filtering by a hidden environment finds nothing rather than its rows.
    html = client.get(reverse("lifecycle:audit"), {"environment": "Production"}).content.decode()
    assert "Nothing recorded matches" in html


def test_it_shows_account_events_to_superusers_only(client, release_manager, environments):
    token, _ = create_token(release_manager, "ci")
    client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    client.force_login(release_manager)  # `full` everywhere, but not a superuser
    html = client.get(reverse("lifecycle:audit")).content.decode()
    assert 'data-action="token_created"' not in html and 'data-action="login_failed"' not in html
    client.force_login(User.objects.create_superuser("root", password="x"))
    html = client.get(reverse("lifecycle:audit")).content.decode()
    assert 'data-action="token_created"' in html and 'data-action="login_failed"' in html


def test_it_filters_the_admins_audit_list_the_same_way(client, environments):
    staff = make_user("staff", {environments[0]: AccessLevel.VIEW}, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_auditevent"))
    AuditEvent.objects.create(
        at="2026-11-29T10:00:00Z", action="tag", environment="Development", summary="dev tag"
    )
    AuditEvent.objects.create(
        at="2026-11-29T10:00:00Z", action="tag", environment="Production", summary="prod tag"
    )
    AuditEvent.objects.create(
        at="2026-11-29T10:00:00Z", action="login_failed", summary="Failed login as 'root'"
    )
    client.force_login(staff)
    html = client.get(reverse("admin:lifecycle_auditevent_changelist")).content.decode()
    assert "dev tag" in html and "prod tag" not in html and "Failed login" not in html


def test_it_shows_before_and_after_readably(client, environments):
    tree = "ab12cd34ef56" + "0" * 52
    AuditEvent.objects.create(
        at="2026-11-29T10:00:00Z",
        action="publish",
        environment="Development",
        summary="Published",
        before={"module": "Core", "version": 1, "tree": "f" * 64},
        after={"module": "Core", "version": 2, "tree": tree},
    )
    client.force_login(User.objects.create_superuser("root", password="x"))
    html = client.get(reverse("lifecycle:audit")).content.decode()
    cell = html[html.index('class="small changes"') :].split("</td>")[0]
    assert "version:</span> 1 → 2" in cell
    assert "tree:</span> ffffffffffff… → ab12cd34ef56…" in cell
    assert "module" not in cell  # unchanged keys are left out
    assert "{" not in cell and tree not in cell


def test_it_lists_the_audit_middleware_once(settings):
    assert settings.MIDDLEWARE.count("lifecycle.audit.AuditMiddleware") == 1


def test_it_lists_the_trail_in_a_fixed_number_of_queries(
    client, release_manager, environments, django_assert_max_num_queries
):
    for index in range(30):
        AuditEvent.objects.create(at="2026-11-29T10:00:00Z", action="tag", summary=f"event {index}")
    client.force_login(release_manager)
    with django_assert_max_num_queries(8):
        client.get(reverse("lifecycle:audit"))


def test_it_keeps_the_trail_when_an_environment_is_renamed(environments, release_manager):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "x"}, user=release_manager)
    Environment.objects.filter(pk=environments[0].pk).update(name="Dev")
    assert AuditEvent.objects.get(action="publish", username="release-manager").environment == "Development"
