"""The grid's conditional refresh (lifecycle/refresh.py): 204 when nothing changed, else the rows that did."""

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from lifecycle import blocking, revision
from lifecycle.models import AccessLevel, EnvironmentAccess, PipelineRevision
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db(transaction=True)  # The revision moves when a change commits.
URL = reverse("lifecycle:pipeline")


def shown(html):
    """What a tab sends on refresh: the revision it shows and each part's id and hash, in order."""
    token = re.search(r'data-revision="([^"]*)"', html).group(1)
    parts = re.findall(r'<(?:thead|tr|nav)[^>]* id="([\w-]+)"[^>]* data-hash="([0-9a-f]+)"', html)
    return {"revision": token, "parts": ",".join(f"{part}:{digest}" for part, digest in parts)}


def refresh(client, sent, query=""):
    return client.post(URL + query, sent, headers={"HX-Request": "true"})


def apply(html, answer):
    """What htmx does with a refresh's out-of-band answer: replace each part by id."""
    for template in re.findall(r"<template>(.*?)</template>", answer, re.S):
        part_id = re.search(r' id="([\w-]+)"', template).group(1)
        new = template.replace(' hx-swap-oob="true"', "")
        tag = re.match(r"<(\w+)", new).group(1)
        html, count = re.subn(
            rf'<{tag}[^>]* id="{part_id}"[^>]*>.*?</{tag}>', lambda _, new=new: new, html, flags=re.S
        )
        assert count == 1, part_id
    return html


@pytest.fixture
def two_applications(environments):
    shop = released_application("Shop", environments)
    blog = released_application("Blog", environments)
    return shop, blog


def test_an_unchanged_grid_is_answered_204_with_no_body_reading_only_the_revision(
    client, viewer, two_applications, django_assert_max_num_queries
):
    client.force_login(viewer)
    sent = shown(client.get(URL).content.decode())
    with django_assert_max_num_queries(3) as queries:  # The session, its user, the revision.
        response = refresh(client, sent)
    assert response.status_code == 204
    assert response.content == b""
    assert "lifecycle_pipelinerevision" in queries.captured_queries[-1]["sql"]
    assert not any("lifecycle_application" in query["sql"] for query in queries.captured_queries)


def test_a_change_sends_back_only_the_rows_that_changed_and_the_new_revision(
    client, viewer, environments, two_applications
):
    (shop, (core,), _), (blog, _, _) = two_applications
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    sent = shown(page)
    publish_files(core, environments[0], {"main.py": "new work"})
    response = refresh(client, sent)
    answer = response.content.decode()
    assert response.status_code == 200
    assert "HX-Retarget" not in response
    assert f'id="row-{shop.pk}"' in answer
    assert f'id="row-{blog.pk}"' not in answer
    assert 'id="grid-head"' not in answer
    assert answer.count("<template>") == 2  # Shop's row and the revision.
    assert len(answer) < 3000
    new_token = re.search(r'id="grid-revision" data-revision="([^"]*)"', answer).group(1)
    assert new_token != sent["revision"]
    # Applied, the page is exactly a fresh one's grid: asking again changes nothing.
    updated = apply(page, answer)
    assert refresh(client, shown(updated)).status_code == 204
    fresh = shown(client.get(URL).content.decode())
    assert shown(updated) == fresh


def test_two_tabs_each_get_the_change_once(client, viewer, environments, two_applications):
    from django.test import Client

    (shop, (core,), _), _ = two_applications
    other = Client()
    client.force_login(viewer)
    other.force_login(viewer)
    first, second = client.get(URL).content.decode(), other.get(URL).content.decode()
    publish_files(core, environments[0], {"main.py": "new work"})
    first = apply(first, refresh(client, shown(first)).content.decode())
    assert refresh(client, shown(first)).status_code == 204
    # The other tab still shows the old revision: it gets the same row, then nothing.
    answer = refresh(other, shown(second)).content.decode()
    assert f'id="row-{shop.pk}"' in answer
    second = apply(second, answer)
    assert refresh(other, shown(second)).status_code == 204
    assert shown(first) == shown(second)


def test_a_row_entering_the_filter_brings_the_whole_grid(client, viewer, environments, two_applications):
    (shop, (core,), _), _ = two_applications
    client.force_login(viewer)
    sent = shown(client.get(URL, {"show": "differences"}).content.decode())
    assert sent["parts"].count("row-") == 0
    publish_files(core, environments[0], {"main.py": "new work"})
    response = refresh(client, sent, "?show=differences")
    assert response["HX-Retarget"] == "#grid"
    assert response["HX-Reswap"] == "outerHTML"
    assert f'id="row-{shop.pk}"' in response.content.decode()


def test_a_new_application_brings_the_whole_grid(client, viewer, environments, two_applications):
    client.force_login(viewer)
    sent = shown(client.get(URL).content.decode())
    make_application("Wiki")
    response = refresh(client, sent)
    assert response["HX-Retarget"] == "#grid"
    assert 'data-application="Wiki"' in response.content.decode()


def test_a_stale_or_missing_revision_is_never_answered_204(client, viewer, two_applications):
    client.force_login(viewer)
    sent = shown(client.get(URL).content.decode())
    assert refresh(client, sent | {"revision": ""}).status_code == 200
    assert refresh(client, sent | {"revision": "nonsense"}).status_code == 200


def test_the_refresh_needs_a_login_and_access(client, outsider, two_applications):
    assert refresh(client, {"revision": "0"}).status_code == 302
    client.force_login(outsider)
    assert refresh(client, {"revision": str(revision.current() + 1)}).status_code == 403


def test_every_change_the_grid_shows_bumps_the_revision(environments, release_manager, two_applications):
    (shop, (core,), _), _ = two_applications
    production = environments[-1]

    def bumped(action):
        before = revision.current()
        action()
        return revision.current() > before

    assert bumped(lambda: publish_files(core, environments[0], {"main.py": "x"}))
    assert bumped(lambda: blocking.block(shop, production, release_manager, "freeze"))
    assert bumped(lambda: blocking.unblock(shop, production, release_manager, "thaw"))
    group = Group.objects.create(name="readers")
    assert bumped(
        lambda: EnvironmentAccess.objects.create(group=group, environment=production, level=AccessLevel.VIEW)
    )
    assert bumped(lambda: release_manager.groups.add(group))
    production.name = "Live"
    assert bumped(production.save)
    assert not bumped(lambda: revision.current())


def test_the_revision_survives_a_missing_row(environments):
    PipelineRevision.objects.all().delete()
    assert revision.current() == 0
    revision.bump()
    assert revision.current() == 1
    revision.bump()
    assert revision.current() == 2


def app_url(application):
    return reverse("lifecycle:application", args=[application.pk])


def test_an_unchanged_application_page_is_answered_204(
    client, viewer, two_applications, django_assert_max_num_queries
):
    (shop, _, _), _ = two_applications
    client.force_login(viewer)
    sent = shown(client.get(app_url(shop)).content.decode())
    assert "module-" in sent["parts"] and "deploy-links" in sent["parts"]
    with django_assert_max_num_queries(3):
        response = client.post(app_url(shop), sent, headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.content == b""


def test_a_change_sends_back_only_the_changed_module_row_of_the_application_page(
    client, viewer, environments
):
    shop, (cart, catalog), _ = released_application("Shop", environments, module_names=("Cart", "Catalog"))
    client.force_login(viewer)
    page = client.get(app_url(shop)).content.decode()
    sent = shown(page)
    publish_files(cart, environments[0], {"main.py": "new cart"})
    answer = client.post(app_url(shop), sent, headers={"HX-Request": "true"}).content.decode()
    assert f'id="module-{cart.pk}"' in answer
    assert f'id="module-{catalog.pk}"' not in answer
    assert "<h1>" not in answer  # Not the page: its changed parts.
    updated = apply(page, answer)
    assert client.post(app_url(shop), shown(updated), headers={"HX-Request": "true"}).status_code == 204


def test_a_new_module_reloads_the_application_page(client, viewer, environments):
    from lifecycle.models import Module

    shop, _, _ = released_application("Shop", environments)
    client.force_login(viewer)
    sent = shown(client.get(app_url(shop)).content.decode())
    Module.objects.create(application=shop, name="Extra")
    response = client.post(app_url(shop), sent, headers={"HX-Request": "true"})
    assert response["HX-Refresh"] == "true"
