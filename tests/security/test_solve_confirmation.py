"""Mark Hotfix as Solved names only environments the user can view among those lacking the hotfix.

Found by attacking as an outsider after issue 9: a user with full access to Pre-Production only
was told, when marking its hotfix solved, that "Development contains none: lacks Shop-Cart" and
the same of Quality Assurance: the names and state of environments invisible to them.
"""

import pytest
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.models import AccessLevel
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def hotfix(environments):
    pre = environments[2]
    _, (module,), _ = released_application("Shop", environments, module_names=("Cart",))
    publish_files(module, pre, {"main.py": "the fix\n"})
    return Hotfix.objects.get()


def test_the_confirmation_counts_the_environments_the_user_cannot_view(hotfix, environments, client):
    dev, qa, pre, prod = environments
    client.force_login(make_user("pre-lead", {pre: AccessLevel.FULL, prod: AccessLevel.VIEW}))
    response = client.post(reverse("hotfixes:solve", args=[hotfix.pk]))
    assert response.status_code == 409
    page = response.content.decode()
    assert dev.name not in page and qa.name not in page
    assert "2 environments you cannot view" in page
    hotfix.refresh_from_db()
    assert hotfix.is_open


def test_a_user_who_views_them_is_told_their_names(hotfix, environments, release_manager, client):
    client.force_login(release_manager)
    page = client.post(reverse("hotfixes:solve", args=[hotfix.pk])).content.decode()
    assert "Development" in page and "Quality Assurance" in page
    assert "cannot view" not in page
