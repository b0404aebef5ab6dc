"""The hotfix list at /hotfixes/: open and solved, filtered, paginated, only where the user can see."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from hotfixes.models import Hotfix, HotfixChange
from hotfixes.propagation import mark_solved
from hotfixes.views import HOTFIXES_PER_PAGE
from lifecycle.models import AccessLevel, ModuleVersion
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db
HOTFIXES = reverse("hotfixes:list")


def rows(response):
    """The hotfix ids listed, in order."""
    return [int(pk) for pk in re.findall(r'<tr data-hotfix="(\d+)"', response.content.decode())]


@pytest.fixture
def shop(environments, release_manager):
    """Shop with three hotfixes: open in Pre-Production, solved in QA, solved incomplete in Production."""
    _, (core,), _ = released_application("Shop", environments)
    dev, qa, pre, prod = environments
    publish_files(core, qa, {"main.py": "qa fix"}, user=release_manager)
    solved = Hotfix.objects.get(environment=qa)
    solved.solved_at, solved.solved_by = solved.opened_at + timedelta(days=2), release_manager
    solved.save()
    publish_files(core, prod, {"main.py": "prod fix"}, user=release_manager)
    incomplete = mark_solved(
        Hotfix.objects.get(environment=prod).pk, environments, user=release_manager, confirm_incomplete=True
    )
    publish_files(core, pre, {"main.py": "pre fix"}, user=release_manager)
    return {"open": Hotfix.objects.get(environment=pre), "solved": solved, "incomplete": incomplete}


def test_it_lists_open_and_solved_hotfixes_with_status_and_age(client, release_manager, shop):
    client.force_login(release_manager)
    response = client.get(HOTFIXES)
    assert response.status_code == 200
    page = response.content.decode()
    # Open ones first: they still need work.
    assert rows(response)[0] == shop["open"].pk
    assert set(rows(response)) == {hotfix.pk for hotfix in shop.values()}
    assert "open for " in page
    assert "solved after 2\xa0days" in page
    assert "solved incomplete" in page
    for hotfix in shop.values():
        assert reverse("hotfixes:hotfix", args=[hotfix.pk]) in page
    assert "Shop-Core" in page


def test_it_filters_by_application_and_state(client, release_manager, environments, shop):
    other, (core,), _ = released_application("Other", environments)
    publish_files(core, environments[1], {"main.py": "other fix"})
    other_hotfix = Hotfix.objects.get(application=other)
    client.force_login(release_manager)

    assert rows(client.get(HOTFIXES, {"application": other.pk})) == [other_hotfix.pk]
    assert rows(client.get(HOTFIXES, {"state": "open"})) == [other_hotfix.pk, shop["open"].pk]
    solved = rows(client.get(HOTFIXES, {"state": "solved", "application": shop["open"].application_id}))
    assert set(solved) == {shop["solved"].pk, shop["incomplete"].pk}
    response = client.get(HOTFIXES, {"state": "solved", "application": other.pk})
    assert rows(response) == []
    assert "No hotfixes match these filters." in response.content.decode()


UNKNOWN_FILTERS = [
    {"application": "abc"},
    {"application": "99999"},
    {"state": "x"},
    {"page": "999"},
    {"page": "x"},
]


@pytest.mark.parametrize("query", UNKNOWN_FILTERS)
def test_it_ignores_filters_it_does_not_know(client, release_manager, shop, query):
    client.force_login(release_manager)
    response = client.get(HOTFIXES, query)
    assert response.status_code == 200
    assert len(rows(response)) == 3


def test_it_lists_only_hotfixes_in_environments_the_user_can_view(client, environments, shop):
    dev, qa, pre, prod = environments
    user = make_user("qa-only", {dev: AccessLevel.VIEW, qa: AccessLevel.VIEW})
    client.force_login(user)
    response = client.get(HOTFIXES)
    assert rows(response) == [shop["solved"].pk]
    assert "Pre-Production" not in response.content.decode()


def test_it_refuses_a_user_who_sees_no_environment(client, outsider):
    client.force_login(outsider)
    assert client.get(HOTFIXES).status_code == 403


def test_it_swaps_only_the_list_for_htmx(client, release_manager, shop):
    client.force_login(release_manager)
    response = client.get(HOTFIXES, {"state": "open"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="hotfixes"')
    assert rows(response) == [shop["open"].pk]


def many_hotfixes(application, environments, count):
    """`count` solved hotfixes made directly, each with a change: enough to fill pages."""
    module = application.modules.get()
    version = ModuleVersion.objects.filter(module=module).first()
    now = timezone.now()
    for n in range(count):
        hotfix = Hotfix.objects.create(
            application=application,
            environment=environments[1 + n % 3],
            opened_at=now - timedelta(hours=n + 1),
            solved_at=now - timedelta(hours=n),
        )
        HotfixChange.objects.create(hotfix=hotfix, module=module, version=version, at=hotfix.opened_at)


def test_it_paginates_in_a_fixed_number_of_queries(
    client, release_manager, environments, django_assert_max_num_queries
):
    application, _, _ = released_application("Shop", environments)
    many_hotfixes(application, environments, 3)
    client.force_login(release_manager)
    with django_assert_max_num_queries(9):
        assert len(rows(client.get(HOTFIXES))) == 3

    many_hotfixes(application, environments, HOTFIXES_PER_PAGE + 7 - 3)
    with django_assert_max_num_queries(9):
        first = client.get(HOTFIXES)
    assert len(rows(first)) == HOTFIXES_PER_PAGE
    assert "Page 1 of 2" in first.content.decode()
    with django_assert_max_num_queries(9):
        second = client.get(HOTFIXES, {"page": 2})
    assert len(rows(second)) == 7
    assert not set(rows(first)) & set(rows(second))


def test_it_is_linked_from_the_navigation_and_the_application_page(client, release_manager, shop):
    client.force_login(release_manager)
    pipeline = client.get(reverse("lifecycle:pipeline")).content.decode()
    assert f'<a href="{HOTFIXES}">Hotfixes</a>' in pipeline
    application_id = shop["open"].application_id
    page = client.get(reverse("lifecycle:application", args=[application_id])).content.decode()
    assert f'href="{HOTFIXES}?application={application_id}">All hotfixes of Shop</a>' in page
