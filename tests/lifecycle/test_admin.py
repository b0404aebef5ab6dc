import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from lifecycle.models import Environment, ModuleVersion
from tests.factories import released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, environments):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


@pytest.mark.parametrize(
    "name",
    [
        "environment",
        "application",
        "module",
        "environmentaccess",
        "moduleversion",
        "applicationtag",
        "modulechange",
        "currentversion",
        "environmenttag",
    ],
)
def test_it_lists_each_model(admin_client, environments, name):
    released_application("Shop", environments)
    response = admin_client.get(reverse(f"admin:lifecycle_{name}_changelist"))
    assert response.status_code == 200


def test_it_edits_the_pipeline_order_in_the_list(admin_client, environments):
    data = {"form-TOTAL_FORMS": "4", "form-INITIAL_FORMS": "4", "_save": "Save"}
    for index, environment in enumerate(environments):
        data[f"form-{index}-id"] = str(environment.pk)
        data[f"form-{index}-position"] = str(10 - index)
        data[f"form-{index}-is_production"] = "on" if environment.name == "Development" else ""
    response = admin_client.post(reverse("admin:lifecycle_environment_changelist"), data)
    assert response.status_code == 302
    assert [e.name for e in Environment.objects.all()][0] == "Production"
    assert Environment.objects.get(name="Development").is_production


def test_it_refuses_to_delete_an_environment_holding_modules(admin_client, environments):
    released_application("Shop", environments)
    qa = environments[1]
    response = admin_client.post(reverse("admin:lifecycle_environment_delete", args=[qa.pk]), {"post": "yes"})
    assert response.status_code == 200
    assert "Cannot delete environment" in response.content.decode()
    assert Environment.objects.filter(pk=qa.pk).exists()


def test_it_shows_module_versions_read_only(admin_client, environments):
    released_application("Shop", environments)
    version = ModuleVersion.objects.get()
    url = reverse("admin:lifecycle_moduleversion_change", args=[version.pk])
    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"comment": "rewritten"})
    version.refresh_from_db()
    assert version.comment == ""
    assert admin_client.get(reverse("admin:lifecycle_moduleversion_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:lifecycle_moduleversion_delete", args=[version.pk]), {"post": "yes"}
    )
    assert response.status_code == 403


def test_it_keeps_the_admin_for_staff_only(client, developer):
    client.force_login(developer)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302


def test_it_calls_hotfixes_hotfixes(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Hotfixes" in html and "Hotfixs" not in html


def test_it_serves_a_favicon_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/img/favicon.svg")
