"""Propagate all the way: a hotfix merged into every earlier environment, nearest first, after one review."""

import pytest
from django.urls import reverse

from hotfixes.merging import prepare
from hotfixes.models import Hotfix, Merge
from hotfixes.propagation import statuses
from lifecycle.models import AccessLevel
from tests.factories import make_user, publish_files
from tests.hotfixes.test_merge_views import (
    BASE,
    MERGE,
    counts,
    current,
    edit,
    form_fields,
    merge_form,
    nothing_written,
    region_of,
    released,
    text_of,
)

pytestmark = pytest.mark.django_db
FIXED = edit(BASE, {2: "fixed 2"})


def propagate_url(hotfix):
    return reverse("hotfixes:propagate", args=[hotfix.pk])


def propagate_form(html):
    return form_fields(html, lambda attrs: attrs.get("method") == "post" and "action" not in attrs)


def states(hotfix, environments):
    (rows,) = statuses([hotfix], environments).values()
    return {row.environment.name: row.state for row in rows}


@pytest.fixture
def hotfix(environments, release_manager):
    """Pre-Production fixed line 2 of cart.py; every other environment still runs 0.3."""
    application, (cart,) = released(environments)
    publish_files(cart, environments[2], {"cart.py": FIXED}, user=release_manager)
    return Hotfix.objects.get()


def steps_in(html):
    """The environments of the page's steps, in order, with the text of each."""
    parts = html.split('<li class="panel" data-environment="')[1:]
    return [(part.split('"', 1)[0], part.split("</ol>", 1)[0]) for part in parts]


def test_it_lists_the_earlier_environments_nearest_first(client, release_manager, environments, hotfix):
    client.force_login(release_manager)
    response = client.get(propagate_url(hotfix))
    html = response.content.decode()
    assert response.status_code == 200
    steps = steps_in(html)
    assert [name for name, _ in steps] == ["Quality Assurance", "Development"]
    for _, text in steps:
        assert 'data-module="eCommerce-Cart"' in text and "clean merge" in text and "conflict" not in text
    assert "Merge into all 2 environments" in html and "Stopped here" not in html


def test_it_merges_into_every_earlier_environment_in_one_go(client, release_manager, environments, hotfix):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    fix = hotfix.changes.get().version
    assert states(hotfix, environments) == {
        "Development": "none",
        "Quality Assurance": "none",
        "Production": "none",
    }
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())
    assert len(data["fingerprint"]) == 2

    response = client.post(propagate_url(hotfix), data)

    assert response.status_code == 302
    assert response.url == reverse("lifecycle:application", args=[hotfix.application_id])
    assert states(hotfix, environments) == {
        "Development": "all",
        "Quality Assurance": "all",
        "Production": "none",
    }
    for environment in (qa, dev):
        assert text_of(cart, environment) == FIXED
        assert current(cart, environment).merged_from == fix
    assert list(Hotfix.objects.all()) == [hotfix]  # no hotfix opened by the merges
    merges = Merge.objects.order_by("id")
    assert [(m.source, m.target, m.hotfix) for m in merges] == [(pre, qa, hotfix), (pre, dev, hotfix)]
    assert all(m.comment == "Propagate the hotfix from Pre-Production" for m in merges)
    page = client.get(response.url).content.decode()
    assert "Merged the hotfix into Quality Assurance, Development." in page

    again = client.get(propagate_url(hotfix)).content.decode()
    assert [text.count("Already contains the hotfix.") for _, text in steps_in(again)] == [1, 1]


def test_it_keeps_the_earlier_environments_own_changes(client, release_manager, environments, hotfix):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    publish_files(cart, dev, {"cart.py": edit(BASE, {11: "development 11"})})
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())

    assert client.post(propagate_url(hotfix), data).status_code == 302

    assert text_of(cart, dev) == edit(BASE, {2: "fixed 2", 11: "development 11"})
    assert text_of(cart, qa) == FIXED


@pytest.fixture
def development_conflicts(environments, hotfix):
    """Development changed the hotfix's line differently."""
    cart = hotfix.changes.get().module
    publish_files(cart, environments[0], {"cart.py": edit(BASE, {2: "development 2"})})
    return cart


def test_it_stops_at_a_conflict_with_a_link_to_the_merge(
    client, release_manager, environments, hotfix, development_conflicts
):
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    html = client.get(propagate_url(hotfix)).content.decode()
    steps = dict(steps_in(html))
    assert list(steps) == ["Quality Assurance", "Development"]
    assert "clean merge" in steps["Quality Assurance"]
    assert 'class="badge-conflict"' in steps["Development"] and "Stopped here" in steps["Development"]
    link = f"{MERGE}?application={hotfix.application_id}&amp;source={pre.pk}&amp;target={dev.pk}"
    assert f'href="{link}"' in steps["Development"]
    assert "Merge into all" not in html


def test_it_merges_nothing_when_posted_while_a_step_conflicts(
    client, release_manager, environments, hotfix, development_conflicts
):
    dev, qa, pre, prod = environments
    cart = development_conflicts
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())
    qa_before, dev_before = current(cart, qa), current(cart, dev)
    before = counts()

    response = client.post(propagate_url(hotfix), data)

    # The view refuses, says why, and merges nowhere, not even the clean step.
    assert response.status_code == 409
    assert "Stopped here" in response.content.decode()
    assert "resolve its conflict first. Nothing was merged." in response.content.decode()
    assert nothing_written(before)
    assert (current(cart, qa), current(cart, dev)) == (qa_before, dev_before)


def test_it_finishes_once_the_conflict_is_resolved_in_the_merge_page(
    client, release_manager, environments, hotfix, development_conflicts
):
    dev, qa, pre, prod = environments
    cart = development_conflicts
    application = hotfix.application
    client.force_login(release_manager)
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "fixed 2\n")
    data = merge_form(client, application, pre, dev)
    assert (
        client.post(MERGE, {**data, f"resolve-{m}-{f}-{r}": "source", "action": "merge"}).status_code == 302
    )

    html = client.get(propagate_url(hotfix)).content.decode()
    steps = dict(steps_in(html))
    assert (
        "Already contains the hotfix." in steps["Development"] and "clean merge" in steps["Quality Assurance"]
    )
    response = client.post(propagate_url(hotfix), propagate_form(html), follow=True)

    assert "Merged the hotfix into Quality Assurance." in response.content.decode()
    assert states(hotfix, environments) == {
        "Development": "all",
        "Quality Assurance": "all",
        "Production": "none",
    }
    assert list(Hotfix.objects.all()) == [hotfix]


def test_it_merges_all_or_nothing_when_a_later_step_went_stale(client, release_manager, environments, hotfix):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())
    publish_files(cart, dev, {"cart.py": edit(BASE, {11: "development 11"})})
    qa_before, dev_before = current(cart, qa), current(cart, dev)
    before = counts()

    response = client.post(propagate_url(hotfix), data)

    html = response.content.decode()
    assert response.status_code == 409
    assert "Development changed after this page was prepared" in html
    assert nothing_written(before)
    assert (current(cart, qa), current(cart, dev)) == (qa_before, dev_before)
    fresh = propagate_form(html)
    assert fresh["fingerprint"] != data["fingerprint"]
    assert client.post(propagate_url(hotfix), fresh).status_code == 302
    assert text_of(cart, dev) == edit(BASE, {2: "fixed 2", 11: "development 11"})


def test_it_refuses_a_user_without_publish_in_some_step(client, release_manager, environments, hotfix):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    partial = make_user(
        "qa-watcher",
        {dev: AccessLevel.DEPLOY, qa: AccessLevel.VIEW, pre: AccessLevel.DEPLOY, prod: AccessLevel.VIEW},
    )
    client.force_login(partial)
    html = client.get(propagate_url(hotfix)).content.decode()
    assert "Merging needs publish access in each of these environments." in html
    assert "Merge into all" not in html
    data = propagate_form(html)
    dev_before = current(cart, dev)
    before = counts()

    response = client.post(propagate_url(hotfix), data)

    assert response.status_code == 403
    assert nothing_written(before) and current(cart, dev) == dev_before


def test_it_refuses_an_outsider(client, outsider, hotfix):
    client.force_login(outsider)
    assert client.get(propagate_url(hotfix)).status_code == 404
    assert client.post(propagate_url(hotfix), {}).status_code == 404
    assert Merge.objects.count() == 0


# Prepared afresh on every visit, the browser's Back button included (item 14).


def test_the_page_is_never_cached(client, release_manager, hotfix):
    client.force_login(release_manager)
    response = client.get(propagate_url(hotfix))
    assert "no-store" in response["Cache-Control"]


def test_a_page_shown_again_after_a_merge_is_refused_and_prepared_afresh(
    client, release_manager, environments, hotfix
):
    """The Back button shows the page as it was; its fingerprints no longer match what is there now."""
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    client.force_login(release_manager)
    old_page = propagate_form(client.get(propagate_url(hotfix)).content.decode())
    assert (
        client.post(MERGE, {**merge_form(client, hotfix.application, pre, qa), "action": "merge"}).status_code
        == 302
    )
    dev_before, before = current(cart, dev), counts()

    response = client.post(propagate_url(hotfix), old_page)

    html = response.content.decode()
    assert response.status_code == 409
    assert "Quality Assurance changed after this page was prepared" in html
    assert nothing_written(before) and current(cart, dev) == dev_before
    steps = dict(steps_in(html))
    assert "Already contains the hotfix." in steps["Quality Assurance"]
    assert "Already contains the hotfix." not in steps["Development"]
    assert "Merge into Development</button>" in html and "Merge into all" not in html
    response = client.post(propagate_url(hotfix), propagate_form(html), follow=True)
    assert "Merged the hotfix into Development." in response.content.decode()
    assert text_of(cart, dev) == FIXED
    assert states(hotfix, environments)["Development"] == "all"


def test_it_shows_what_each_environment_will_receive_with_links_to_the_diffs(
    client, release_manager, environments, hotfix
):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    base = current(cart, qa)
    client.force_login(release_manager)
    html = client.get(propagate_url(hotfix)).content.decode()
    for name, step in steps_in(html):
        assert f"{name} will receive:" in step
        item = step.split('data-path="cart.py"', 1)[1].split("</li>", 1)[0]
        assert "1 hunk," in item and "+1" in item and "−1" in item
        assert (
            f"module={cart.pk}&amp;base={base.number}&amp;version={hotfix.changes.get().version.number}"
            in item
        )
        assert "path=cart.py" in item
    assert 'name="comment"' in html


def test_the_comment_becomes_the_merged_versions_comment(client, release_manager, environments, hotfix):
    dev, qa, pre, prod = environments
    cart = hotfix.changes.get().module
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())

    response = client.post(propagate_url(hotfix), {**data, "comment": "Quantities count, everywhere"})

    assert response.status_code == 302
    assert current(cart, qa).comment == current(cart, dev).comment == "Quantities count, everywhere"
    assert {merge.comment for merge in Merge.objects.all()} == {"Quantities count, everywhere"}


def test_a_comment_too_long_is_refused_and_nothing_merged(client, release_manager, environments, hotfix):
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(hotfix)).content.decode())
    before = counts()

    response = client.post(propagate_url(hotfix), {**data, "comment": "x" * 2001})

    assert response.status_code == 422
    assert "A comment has at most 2000 characters; nothing was merged." in response.content.decode()
    assert nothing_written(before)


def test_it_names_the_one_environment_to_merge_into(client, release_manager, environments):
    """A hotfix in Quality Assurance goes back to Development only: "Merge into Development"."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, qa, {"cart.py": FIXED}, user=release_manager)
    client.force_login(release_manager)
    html = client.get(propagate_url(Hotfix.objects.get())).content.decode()
    assert "Merge into Development</button>" in html
    assert "all 1 environment" not in html


def test_it_answers_422_when_a_merged_result_is_refused_and_merges_nowhere(
    client, release_manager, environments
):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, dev, {"cart.py": BASE, "README.md": "dev\n"})
    publish_files(cart, pre, {"cart.py": FIXED, "readme.md": "pre\n"}, user=release_manager)
    client.force_login(release_manager)
    data = propagate_form(client.get(propagate_url(Hotfix.objects.get())).content.decode())
    before = counts()

    response = client.post(propagate_url(Hotfix.objects.get()), data)

    assert response.status_code == 422
    assert "cannot be published into Development" in response.content.decode()
    assert nothing_written(before) and text_of(cart, qa) == BASE
