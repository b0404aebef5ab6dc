"""Refreshes that must not leave a page stale: each changes what a page shows, then refreshes the page
and compares it with a fresh one (lifecycle/refresh.py, lifecycle/revision.py)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from lifecycle import pipeline, refresh
from lifecycle.models import AccessLevel, AgentToken, EnvironmentAccess
from tests.delivery.test_live import report, seen
from tests.factories import make_user, publish_files, released_application
from tests.lifecycle.test_refresh import apply, shown

pytestmark = pytest.mark.django_db(transaction=True)  # The revision moves when a change commits.
URL = reverse("lifecycle:pipeline")


def post(client, url, sent):
    return client.post(url, sent, headers={"HX-Request": "true"})


def refreshed(client, url, page):
    """The page after one refresh, as htmx leaves it."""
    response = post(client, url, shown(page))
    if response.status_code == 204:
        return page
    if response.get("HX-Retarget") == "#grid":  # The whole grid, in place of the old one.
        grid = response.content.decode()
        return re.sub(r'<section id="grid".*?</section>', lambda _: grid, page, flags=re.S)
    return apply(page, response.content.decode())


def test_a_module_moved_to_another_application_leaves_the_row_of_the_one_it_left(
    client, viewer, environments
):
    shop, (_, cart), _ = released_application("Shop", environments, module_names=("Core", "Cart"))
    blog, _, _ = released_application("Blog", environments)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    cart.application = blog  # What the admin's module form may do.
    cart.save()
    assert shown(refreshed(client, URL, page)) == shown(client.get(URL).content.decode())


def test_a_module_moved_to_another_application_leaves_the_page_of_the_one_it_left(
    client, viewer, environments
):
    shop, (cart,), _ = released_application("Shop", environments)
    blog, _, _ = released_application("Blog", environments)
    url = reverse("lifecycle:application", args=[shop.pk])
    client.force_login(viewer)
    page = client.get(url).content.decode()
    cart.application = blog
    cart.save()
    response = post(client, url, shown(page))
    assert response.status_code == 200 and response["HX-Refresh"] == "true"  # Its module went away.


@pytest.fixture
def delivering(environments, monkeypatch):
    """Shop and Blog released everywhere; Production delivers by agent, seen a second ago; time stopped."""
    applications = [released_application(name, environments)[0] for name in ("Shop", "Blog")]
    production = environments[-1]
    production.delivery = "agent"
    production.save()
    token = seen(production, seconds_ago=1)
    for application in applications:
        report(application, production)
    now = refresh.time.time()
    monkeypatch.setattr(refresh.time, "time", lambda: now)  # The minute in the token does not move.
    return applications, token


def offline_after_the_first_read_of_agents(monkeypatch, token):
    """The agent goes offline right after the request first reads who is online, before it reads again."""
    done = []

    def then_offline(read):
        def wrapper(*args, **kwargs):
            result = read(*args, **kwargs)
            if not done:
                done.append(True)
                AgentToken.objects.filter(pk=token.pk).update(
                    last_seen_at=token.last_seen_at - timedelta(days=1)  # An update(): no bump, as a poll.
                )
            return result

        return wrapper

    monkeypatch.setattr(pipeline, "live_states", then_offline(pipeline.live_states))
    monkeypatch.setattr(refresh, "agents_online", then_offline(refresh.agents_online))


def test_an_agent_going_offline_while_the_grid_is_built_is_not_missed(
    client, viewer, environments, delivering, monkeypatch
):
    _, token = delivering
    client.force_login(viewer)
    offline_after_the_first_read_of_agents(monkeypatch, token)
    page = client.get(URL).content.decode()
    assert shown(refreshed(client, URL, page)) == shown(client.get(URL).content.decode())


def test_an_agent_going_offline_while_a_row_refresh_runs_is_not_missed(
    client, viewer, environments, delivering, monkeypatch
):
    (_, blog), token = delivering
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    publish_files(blog.modules.get(), environments[0], {"main.py": "new work"})  # Names Blog only.
    offline_after_the_first_read_of_agents(monkeypatch, token)
    updated = refreshed(client, URL, page)
    assert shown(refreshed(client, URL, updated)) == shown(client.get(URL).content.decode())


def test_an_agent_going_offline_while_the_application_page_is_built_is_not_missed(
    client, viewer, environments, delivering, monkeypatch
):
    (shop, _), token = delivering
    url = reverse("lifecycle:application", args=[shop.pk])
    client.force_login(viewer)
    offline_after_the_first_read_of_agents(monkeypatch, token)
    page = client.get(url).content.decode()
    assert shown(refreshed(client, url, page)) == shown(client.get(url).content.decode())


def test_an_application_added_on_a_later_page_updates_the_count_and_the_pages_of_the_first(
    client, viewer, environments, settings
):
    settings.GRID_PAGE_SIZE = 2
    for name in ("Alpha", "Beta"):
        released_application(name, environments)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert 'rel="next"' not in page
    released_application("Gamma", environments)  # On page 2: the rows of page 1 stay as they are.
    updated = refreshed(client, URL, page)
    fresh = client.get(URL).content.decode()
    assert 'rel="next"' in fresh and "of 3" in fresh
    assert 'rel="next"' in updated and "of 3" in updated
    released_application("Delta", environments)
    updated = refreshed(client, URL, updated)
    assert "of 4" in updated
    assert shown(updated) == shown(client.get(URL).content.decode())


def test_the_token_says_nothing_of_agents_in_environments_the_viewer_cannot_see(client, environments):
    shop, _, _ = released_application("Shop", environments)
    development, production = environments[0], environments[-1]
    for environment in (development, production):
        environment.delivery = "agent"
        environment.save()
    seen(development, seconds_ago=1)
    hidden = seen(production, seconds_ago=1)
    developer = make_user("dev-only", {development: AccessLevel.VIEW})
    client.force_login(developer)
    page = client.get(URL).content.decode()
    AgentToken.objects.filter(pk=hidden.pk).update(last_seen_at=hidden.last_seen_at - timedelta(days=1))
    assert post(client, URL, shown(page)).status_code == 204  # Nothing they may see changed.
    assert shown(client.get(URL).content.decode())["revision"] == shown(page)["revision"]


def test_a_viewer_who_lost_an_environment_gets_no_cell_of_it_from_a_row_refresh(client, environments):
    shop, (core,), _ = released_application("Shop", environments)
    production = environments[-1]
    viewer = make_user("losing", {environment: AccessLevel.VIEW for environment in environments})
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    EnvironmentAccess.objects.filter(environment=production).delete()
    publish_files(core, environments[0], {"main.py": "new work"})
    updated = refreshed(client, URL, page)
    assert f'data-environment="{production.name}"' not in updated
    assert shown(updated) == shown(client.get(URL).content.decode())


def test_a_viewer_who_lost_every_environment_is_refused_the_refresh(client, viewer, environments):
    shop, (core,), _ = released_application("Shop", environments)
    for url in (URL, reverse("lifecycle:application", args=[shop.pk])):
        client.force_login(viewer)
        page = client.get(url).content.decode()
        viewer.groups.clear()
        publish_files(core, environments[0], {"main.py": f"work for {url}"})
        assert post(client, url, shown(page)).status_code == 403
        viewer.groups.set(Group.objects.all())
