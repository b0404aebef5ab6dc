"""A refresh behind by some changes renders only the rows those changes name (lifecycle/refresh.py).

Each pipeline revision records the applications it changed (`PipelineChange`); a tab that is
behind gets the rows of those among the ones it shows, and the heads, with no other row built.
"""

import re

import pytest
from django.db import transaction
from django.urls import reverse

from lifecycle import refresh, revision
from lifecycle.deploying.running import run_deployment
from lifecycle.models import Deployment, PipelineChange
from tests.delivery.test_live import report, seen
from tests.factories import make_application, publish_files, released_application
from tests.lifecycle.deliveries import changed_in_development, start
from tests.lifecycle.test_refresh import apply, shown

pytestmark = pytest.mark.django_db(transaction=True)  # The revision moves when a change commits.
URL = reverse("lifecycle:pipeline")


def post(client, url, sent):
    return client.post(url, sent, headers={"HX-Request": "true"})


def rows_in(answer):
    return re.findall(r'<tr[^>]* id="(row-\d+)"', answer)


@pytest.fixture
def many(environments):
    """Twelve applications released everywhere: a page of rows, of which one will change."""
    return [released_application(f"App {index:02}", environments) for index in range(12)]


def test_one_changed_application_renders_its_row_alone_and_the_page_matches_a_fresh_one(
    client, viewer, environments, many, django_assert_max_num_queries
):
    (changed, (core,), _) = many[5]
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    publish_files(core, environments[0], {"main.py": "new work"})
    with django_assert_max_num_queries(20) as queries:
        response = post(client, URL, shown(page))
    answer = response.content.decode()
    assert rows_in(answer) == [f"row-{changed.pk}"]
    # Only the changed application was read to build rows, not the eleven others.
    read = re.findall(
        r'"application_id" IN \(([^)]*)\)', " ".join(q["sql"] for q in queries.captured_queries)
    )
    assert read and set(read) == {str(changed.pk)}
    updated = apply(page, answer)
    assert shown(updated) == shown(client.get(URL).content.decode())
    assert post(client, URL, shown(updated)).status_code == 204


def test_the_query_count_of_a_row_refresh_does_not_grow_with_the_page(
    client, viewer, environments, django_assert_max_num_queries
):
    def queries_for(count):
        applications = [
            released_application(f"Size{count} {index:02}", environments) for index in range(count)
        ]
        client.force_login(viewer)
        page = client.get(URL).content.decode()
        publish_files(applications[0][1][0], environments[0], {"main.py": f"work {count}"})
        with django_assert_max_num_queries(40) as queries:
            answer = post(client, URL, shown(page)).content.decode()
        assert rows_in(answer) == [f"row-{applications[0][0].pk}"]
        return len(queries.captured_queries)

    assert queries_for(3) == queries_for(15)


def test_a_change_to_an_application_not_shown_sends_only_the_new_revision(client, viewer, environments, many):
    client.force_login(viewer)
    page = client.get(URL, {"q": "App 0"}).content.decode()  # App 00 to App 09
    (hidden, (core,), _) = many[11]
    publish_files(core, environments[0], {"main.py": "new work"})
    answer = post(client, URL + "?q=App+0", shown(page)).content.decode()
    assert rows_in(answer) == []
    assert answer.count("<template>") == 1 and 'id="grid-revision"' in answer
    updated = apply(page, answer)
    assert post(client, URL + "?q=App+0", shown(updated)).status_code == 204


def test_a_deployment_records_only_its_application(environments, release_manager):
    shop, _ = changed_in_development("Shop", environments)
    blog, _, _ = released_application("Blog", environments)
    before = revision.current()
    deployment = run_deployment(start(environments[0], environments[1], shop, release_manager).pk)
    assert deployment.status == Deployment.Status.FINISHED
    assert revision.changed_since(before, revision.current()) == {shop.pk}
    assert blog.pk not in revision.changed_since(before, revision.current())


def test_changes_of_one_transaction_are_one_revision_naming_all_their_applications(environments):
    shop, blog, wiki = (make_application(name)[0] for name in ("Shop", "Blog", "Wiki"))
    before = revision.current()
    with transaction.atomic():
        revision.bump([shop.pk])
        revision.bump([blog.pk, shop.pk])
    assert revision.current() == before + 1
    assert revision.changed_since(before, before + 1) == {shop.pk, blog.pk}
    with transaction.atomic():
        revision.bump([wiki.pk])
        revision.bump()  # Something of no one application: anything may have changed.
    assert revision.changed_since(before + 1, before + 2) is None
    assert revision.changed_since(before, before + 2) is None


def test_environment_access_and_new_applications_change_anything(environments, release_manager):
    before = revision.current()
    environments[0].name = "Dev"
    environments[0].save()
    assert revision.changed_since(before, revision.current()) is None
    before = revision.current()
    make_application("Wiki")
    assert revision.changed_since(before, revision.current()) is None


def test_a_page_older_than_the_changes_kept_compares_the_whole_page(environments):
    shop, _ = make_application("Shop")
    start_value = revision.current()
    for _ in range(revision.KEEP + revision.PRUNE_EVERY):
        revision.bump([shop.pk])
    now = revision.current()
    assert revision.changed_since(start_value, now) is None  # Too old: its changes were pruned.
    assert PipelineChange.objects.filter(revision__lte=start_value).count() == 0
    assert revision.changed_since(now - 10, now) == {shop.pk}
    assert revision.changed_since(now + 5, now) is None  # A token from another database.


@pytest.fixture
def delivering(environments):
    """Shop released everywhere; Production delivers by agent, and its agent was seen a second ago."""
    shop, modules, _ = released_application("Shop", environments)
    production = environments[-1]
    production.delivery = "agent"
    production.save()
    token = seen(production, seconds_ago=1)
    report(shop, production)
    return shop, token


def test_with_agents_the_minute_brings_back_only_the_heads(
    client, viewer, environments, delivering, monkeypatch
):
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    sent = shown(page)
    assert post(client, URL, sent).status_code == 204
    later = refresh.time.time() + 60
    monkeypatch.setattr(refresh.time, "time", lambda: later)
    answer = post(client, URL, sent).content.decode()
    assert rows_in(answer) == []  # No row shows a time: none is rendered again.
    updated = apply(page, answer)
    assert post(client, URL, shown(updated)).status_code == 204


def test_an_agent_going_offline_compares_every_row(client, viewer, environments, delivering):
    shop, token = delivering
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert "✓" in page
    type(token).objects.filter(pk=token.pk).update(last_seen_at=token.last_seen_at.replace(year=2000))
    answer = post(client, URL, shown(page)).content.decode()
    assert rows_in(answer) == [f"row-{shop.pk}"]  # Its Production cell now says "agent offline".
    assert "agent offline" in answer and 'id="grid-head"' in answer


def test_the_application_page_of_an_unchanged_application_gets_only_the_new_revision(
    client, viewer, environments, many
):
    (shop, _, _), (_, (other_core,), _) = many[0], many[1]
    url = reverse("lifecycle:application", args=[shop.pk])
    client.force_login(viewer)
    page = client.get(url).content.decode()
    publish_files(other_core, environments[0], {"main.py": "elsewhere"})
    answer = post(client, url, shown(page)).content.decode()
    assert answer.count("<template>") == 1 and 'id="application-revision"' in answer
    updated = apply(page, answer)
    assert post(client, url, shown(updated)).status_code == 204


def test_an_unchanged_refresh_carries_no_document_headers_and_a_page_all_of_them(client, viewer, many):
    client.force_login(viewer)
    page = client.get(URL)
    assert "Content-Security-Policy" in page and page["X-Frame-Options"] == "DENY"
    response = post(client, URL, shown(page.content.decode()))
    assert response.status_code == 204
    assert dict(response.headers) == {}  # The server adds its status line, Date and Server: ~120 bytes.


def test_a_login_moves_nothing_but_a_change_of_someones_flags_moves_anything(client, viewer):
    before = revision.current()
    client.force_login(viewer)
    assert client.get(URL).status_code in (200, 403)
    assert revision.current() == before
    viewer.is_staff = True
    viewer.save()
    assert revision.changed_since(before, revision.current()) is None


@pytest.mark.parametrize(
    "revision_sent",
    ["²", "1²", "99999999999999999999999999", "-1", "1.", "1.x.y.z", "१२", " 1", "1" * 5000],
)
def test_hostile_revisions_and_parts_are_compared_whole_never_a_500(client, viewer, many, revision_sent):
    client.force_login(viewer)
    sent = shown(client.get(URL).content.decode())
    parts = sent["parts"] + ",row-²:00,row-99999999999999999999999:00,row-:,:,row-1x:zz," + "x" * 1000
    response = post(client, URL, {"revision": revision_sent, "parts": parts})
    assert response.status_code == 200
