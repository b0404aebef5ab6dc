"""Cursor paging (lifecycle/api/paging.py): every item once, in key order, with opaque signed cursors."""

import pytest

from lifecycle.api.paging import MAX_LIMIT, page
from lifecycle.api.problems import Problem
from lifecycle.models import Application, AuditEvent
from tests.api.test_problems import assert_problem
from tests.factories import make_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def applications(db):
    return [make_application(f"App{n:02}", [])[0] for n in range(7)]


def walk(queryset, limit, key):
    seen, cursor = [], None
    while True:
        items, cursor = page(queryset, cursor, limit, key=key)
        seen.extend(items)
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_it_gives_every_item_once_in_order(applications, limit):
    assert walk(Application.objects.all(), limit, ("-pk",)) == sorted(applications, key=lambda a: -a.pk)
    assert walk(Application.objects.all(), limit, ("name", "pk")) == applications


def test_it_ends_with_no_cursor(applications):
    items, cursor = page(Application.objects.all(), None, 7)
    assert len(items) == 7 and cursor is None
    items, cursor = page(Application.objects.all(), None, 6)
    assert len(items) == 6 and cursor


def test_it_pages_by_a_non_unique_key_and_a_date(applications):
    from lifecycle import audit

    for n in range(5):
        audit.record(AuditEvent.Action.TOKEN_CREATED, summary=f"event {n}")
    events = AuditEvent.objects.all()
    assert walk(events, 2, ("-at", "-pk")) == list(events.order_by("-at", "-pk"))


def test_rows_added_meanwhile_are_neither_repeated_nor_skipped(applications):
    first, cursor = page(Application.objects.all(), None, 3, key=("pk",))
    make_application("Late", [])
    rest = walk_from(cursor)
    assert [a.name for a in first + rest] == [a.name for a in Application.objects.order_by("pk")]


def walk_from(cursor):
    seen = []
    while cursor:
        items, cursor = page(Application.objects.all(), cursor, 3, key=("pk",))
        seen.extend(items)
    return seen


@pytest.mark.parametrize("cursor", ["x", "e30", "a" * 2000, "eyJrIjpbXX0:1abc:def", "\u00e9\u00e9", "null"])
def test_a_bad_cursor_is_a_400_problem(applications, cursor):
    with pytest.raises(Problem) as refused:
        page(Application.objects.all(), cursor, 3)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_a_cursor_is_good_only_for_its_key(applications):
    _, cursor = page(Application.objects.all(), None, 3, key=("name", "pk"))
    with pytest.raises(Problem):
        page(Application.objects.all(), cursor, 3, key=("-pk",))


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_the_limit_is_bounded(applications, limit):
    with pytest.raises(Problem):
        page(Application.objects.all(), None, limit)


@pytest.mark.urls("tests.api.urls")
def test_a_list_operation_answers_items_and_next_cursor(client, environments, developer):
    from lifecycle import tokens

    headers = {"Authorization": f"Bearer {tokens.create_token(developer, 'ci')[1]}"}
    first = client.get("/api/v1/environments?limit=3", headers=headers).json()
    assert [e["name"] for e in first["items"]] == [e.name for e in environments[:3]]
    rest = client.get(f"/api/v1/environments?limit=3&cursor={first['next_cursor']}", headers=headers).json()
    assert [e["name"] for e in rest["items"]] == [e.name for e in environments[3:]]
    assert rest["next_cursor"] is None
    assert_problem(client.get("/api/v1/environments?cursor=nope", headers=headers), 400, "invalid_cursor")
    for limit in ("0", "201", "many"):
        assert_problem(
            client.get(f"/api/v1/environments?limit={limit}", headers=headers), 422, "invalid_request"
        )
