"""The admin's history lists show staff only what their environment access shows on the pages.

Found by attacking as an outsider after issue 9: a staff member with no environment access
(only Django's "view" permissions) listed in the admin every module version with its comment
(and could search by it), what every environment runs and ran, every tag with its notes and
every hotfix, Production-only ones included, although the pages answer 404 for them. The
audit trail's admin list was already filtered; these now are too.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.models import (
    AccessLevel,
    ApplicationTag,
    CurrentVersion,
    EnvironmentTag,
    ModuleChange,
    ModuleVersion,
)
from lifecycle.tagging import tag_environment
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db

COMMENT = "Confidential: the outage fix"


@pytest.fixture
def hidden(environments):
    """v2 of Shop-Cart, published in Production only and tagged 0.3.1 there."""
    prod = environments[-1]
    application, (module,), _ = released_application("Shop", environments, module_names=("Cart",))
    version = publish_files(module, prod, {"main.py": "secret\n"}, comment=COMMENT)
    tag_environment(application, prod, "0.3.1", notes="Confidential notes")
    return version


def _staff(environments, levels=None):
    user = make_user("operator", levels, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def _listed(client, model):
    response = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    assert response.status_code == 200
    return set(response.context["cl"].queryset)


def test_staff_without_access_list_nothing_of_production(environments, hidden, client):
    client.force_login(_staff(environments, {environments[0]: AccessLevel.VIEW}))
    prod = environments[-1]
    assert hidden not in _listed(client, ModuleVersion)
    assert ModuleVersion.objects.get(number=1) in _listed(client, ModuleVersion)
    assert not any(change.environment == prod for change in _listed(client, ModuleChange))
    assert not any(current.environment == prod for current in _listed(client, CurrentVersion))
    assert not any(tag.environment == prod for tag in _listed(client, EnvironmentTag))
    assert [tag.number for tag in _listed(client, ApplicationTag)] == ["0.3"]
    assert not _listed(client, Hotfix)


def test_a_hidden_version_is_not_found_in_the_admin(environments, hidden, client):
    client.force_login(_staff(environments))
    url = reverse("admin:lifecycle_moduleversion_change", args=[hidden.pk])
    response = client.get(url, follow=True)
    assert COMMENT not in response.content.decode()
    search = client.get(reverse("admin:lifecycle_moduleversion_changelist"), {"q": "outage"})
    assert not search.context["cl"].queryset.exists()


def test_a_production_viewer_and_a_superuser_list_everything(environments, hidden, client):
    client.force_login(_staff(environments, {environments[-1]: AccessLevel.VIEW}))
    assert hidden in _listed(client, ModuleVersion)
    assert Hotfix.objects.get() in _listed(client, Hotfix)
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    assert set(ModuleVersion.objects.all()) == _listed(client, ModuleVersion)
    assert set(ApplicationTag.objects.all()) == _listed(client, ApplicationTag)
