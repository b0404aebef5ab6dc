"""Mark Hotfix as Solved, where each environment stands, and the hotfix's timeline."""

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse

import hotfixes.propagation
from hotfixes.merging import perform, prepare, take_everything
from hotfixes.models import Hotfix
from hotfixes.propagation import SolveError, mark_solved, statuses
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.models import AccessLevel, ApplicationTag
from lifecycle.tagging import tag_environment
from tests.factories import make_user, publish_files
from tests.hotfixes.test_merge_views import BASE, edit, released

pytestmark = pytest.mark.django_db
GRID = reverse("lifecycle:pipeline")


def solve_url(hotfix):
    return reverse("hotfixes:solve", args=[hotfix.pk])


def application_url(hotfix):
    return reverse("lifecycle:application", args=[hotfix.application_id])


def states(hotfix, environments):
    (rows,) = statuses([hotfix], environments).values()
    return {row.environment.name: row.state for row in rows}


def deploy(source, target, application, user):
    """Tag & Deploy through the same steps as the browser."""
    validation = validate(source, target, [application])
    deployment = start_deployment(
        source, target, [application], user=user, fingerprint=validation.fingerprint
    )
    run_deployment(deployment.pk)


def merge(application, source, target, user):
    prepared = prepare(application, source, target)
    perform(prepared, take_everything(prepared), user=user, fingerprint=prepared.fingerprint)


@pytest.fixture
def hotfix(environments, release_manager):
    """Pre-Production fixed line 2 of eCommerce-Cart's cart.py; the others run 0.3."""
    application, (cart,) = released(environments)
    publish_files(cart, environments[2], {"cart.py": edit(BASE, {2: "fixed 2"})}, user=release_manager)
    return Hotfix.objects.get()


@pytest.fixture
def propagated(environments, release_manager, hotfix):
    """The hotfix deployed to Production and merged back into Quality Assurance and Development."""
    dev, qa, pre, prod = environments
    deploy(pre, prod, hotfix.application, release_manager)
    merge(hotfix.application, pre, qa, release_manager)
    merge(hotfix.application, qa, dev, release_manager)
    return hotfix


def test_it_marks_a_propagated_hotfix_solved_and_the_red_is_gone(
    client, release_manager, environments, propagated
):
    hotfix = propagated
    client.force_login(release_manager)
    grid, page = client.get(GRID).content.decode(), client.get(application_url(hotfix)).content.decode()
    assert 'class="cell hotfix"' in grid
    assert 'class="hotfix"' in page and "hotfix-plus" in page and "Open hotfixes" in page
    assert page.count('class="propagation-all"') == 3
    assert f'action="{solve_url(hotfix)}"' in page

    response = client.post(solve_url(hotfix), follow=True)

    assert response.redirect_chain == [(application_url(hotfix), 302)]
    page = response.content.decode()
    assert "Marked the hotfix of eCommerce in Pre-Production as solved." in page
    hotfix.refresh_from_db()
    assert not hotfix.is_open and hotfix.solved_by == release_manager
    assert not hotfix.solved_incomplete and hotfix.solved_note == ""
    assert 'class="hotfix"' not in page and "hotfix-plus" not in page and "Open hotfixes" not in page
    assert 'class="cell hotfix"' not in client.get(GRID).content.decode()


def test_it_asks_for_confirmation_naming_the_environments_that_lack_it(
    client, release_manager, environments, hotfix
):
    dev, qa, pre, prod = environments
    deploy(pre, prod, hotfix.application, release_manager)
    merge(hotfix.application, pre, qa, release_manager)
    client.force_login(release_manager)

    response = client.post(solve_url(hotfix))

    html = response.content.decode()
    assert response.status_code == 409
    alert = html.split('role="alert"', 1)[1].split("</div>", 1)[0]
    assert "<strong>Development</strong> contains none: lacks eCommerce-Cart." in alert
    assert "Quality Assurance" not in alert and "Production" not in alert
    assert 'name="confirm" value="yes"' in html and "Mark Hotfix as Solved anyway" in html
    hotfix.refresh_from_db()
    assert hotfix.is_open and hotfix.solved_by is None and not hotfix.solved_incomplete

    response = client.post(solve_url(hotfix), {"confirm": "yes"})

    assert response.status_code == 302
    hotfix.refresh_from_db()
    assert not hotfix.is_open and hotfix.solved_incomplete
    assert hotfix.solved_note == "Solved while Development lacked eCommerce-Cart"
    detail = client.get(reverse("hotfixes:hotfix", args=[hotfix.pk])).content.decode()
    assert "Marked solved while incomplete by release-manager" in detail
    assert "Solved while Development lacked eCommerce-Cart" in detail


def test_it_names_every_environment_that_lacks_an_unpropagated_hotfix(
    client, release_manager, environments, hotfix
):
    client.force_login(release_manager)
    response = client.post(solve_url(hotfix))
    html = response.content.decode()
    assert response.status_code == 409
    for name in ("Development", "Quality Assurance", "Production"):
        assert f"<strong>{name}</strong> contains none: lacks eCommerce-Cart." in html
    assert Hotfix.objects.open().get() == hotfix


def test_it_records_what_was_lacking_next_to_the_note(client, release_manager, environments, hotfix):
    client.force_login(release_manager)
    client.post(solve_url(hotfix), {"confirm": "yes", "note": "Development is rebuilt next week"})
    hotfix.refresh_from_db()
    assert hotfix.solved_incomplete
    assert "Development is rebuilt next week" in hotfix.solved_note
    assert "Development lacked eCommerce-Cart" in hotfix.solved_note


def test_it_tells_the_second_one_who_solved_it_first(client, release_manager, environments, propagated):
    hotfix = propagated
    client.force_login(release_manager)
    assert client.post(solve_url(hotfix)).status_code == 302
    hotfix.refresh_from_db()
    solved_at = hotfix.solved_at
    colleague = make_user("colleague", {environment: AccessLevel.FULL for environment in environments})
    client.force_login(colleague)

    response = client.post(solve_url(hotfix), {"confirm": "yes", "note": "me too"}, follow=True)

    assert response.redirect_chain == [(application_url(hotfix), 302)]
    assert "This hotfix was already marked solved by release-manager at" in response.content.decode()
    hotfix.refresh_from_db()
    assert (hotfix.solved_at, hotfix.solved_by, hotfix.solved_note) == (solved_at, release_manager, "")


def test_it_refuses_a_user_without_full_access(client, developer, environments, propagated):
    hotfix = propagated
    client.force_login(developer)
    page = client.get(application_url(hotfix)).content.decode()
    assert f'action="{solve_url(hotfix)}"' not in page
    detail = client.get(reverse("hotfixes:hotfix", args=[hotfix.pk])).content.decode()
    assert "Mark Hotfix as Solved" not in detail

    response = client.post(solve_url(hotfix), {"confirm": "yes"})

    assert response.status_code == 403
    hotfix.refresh_from_db()
    assert hotfix.is_open


def test_it_only_answers_post(client, release_manager, hotfix):
    client.force_login(release_manager)
    assert client.get(solve_url(hotfix)).status_code == 405
    assert Hotfix.objects.get().is_open


@pytest.mark.parametrize("how", ["deployment", "tag"])
def test_it_counts_a_deployed_tag_holding_the_hotfix(client, release_manager, environments, hotfix, how):
    dev, qa, pre, prod = environments
    assert states(hotfix, environments)["Production"] == "none"
    if how == "deployment":
        deploy(pre, prod, hotfix.application, release_manager)
        assert ApplicationTag.objects.filter(application=hotfix.application, number="0.3.1").exists()
    else:
        deploy_tag(tag_environment(hotfix.application, pre, "0.3.1"), prod)

    assert states(hotfix, environments) == {
        "Development": "none",
        "Quality Assurance": "none",
        "Production": "all",
    }
    client.force_login(release_manager)
    page = client.get(application_url(hotfix)).content.decode()
    assert '<li class="propagation-all" data-environment="Production">' in page
    assert '<li class="propagation-none" data-environment="Development">' in page


def test_it_counts_a_tag_deployed_backward_but_not_a_later_change_that_drops_the_fix(
    release_manager, environments, hotfix
):
    dev, qa, pre, prod = environments
    tag = tag_environment(hotfix.application, pre, "0.3.1")
    deploy_tag(tag, qa)
    assert states(hotfix, environments)["Quality Assurance"] == "all"
    # Deploying the old tag again replaces the hotfix version: no longer contained.
    deploy_tag(ApplicationTag.objects.get(application=hotfix.application, number="0.3"), qa)
    assert states(hotfix, environments)["Quality Assurance"] == "none"


# ---------------------------------------------------------------------------
# Two people at once


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks across connections need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_simultaneous_solves_win(environments, release_manager, monkeypatch):
    application, (cart,) = released(environments)
    publish_files(cart, environments[2], {"cart.py": edit(BASE, {2: "fixed 2"})}, user=release_manager)
    hotfix = Hotfix.objects.get()
    colleague = make_user("colleague", {environment: AccessLevel.FULL for environment in environments})
    original = hotfixes.propagation.statuses

    def slow_statuses(*args, **kwargs):
        time.sleep(0.3)  # Both would be inside the check-then-write window without the row lock.
        return original(*args, **kwargs)

    monkeypatch.setattr(hotfixes.propagation, "statuses", slow_statuses)
    barrier = threading.Barrier(2)
    outcomes = {}

    def solve(user):
        try:
            barrier.wait(timeout=10)
            mark_solved(hotfix.pk, environments, user=user, confirm_incomplete=True, note=user.username)
            outcomes[user.username] = "solved"
        except SolveError as error:
            outcomes[user.username] = str(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=solve, args=(user,)) for user in (release_manager, colleague)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    (winner,) = [name for name, outcome in outcomes.items() if outcome == "solved"]
    (loser,) = [outcome for outcome in outcomes.values() if outcome != "solved"]
    assert f"already marked solved by {winner}" in loser
    hotfix.refresh_from_db()
    assert hotfix.solved_by.username == winner and hotfix.solved_note.startswith(f"{winner} — Solved while")


# ---------------------------------------------------------------------------
# The hotfix page


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at


def timeline_of(html):
    items = html.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0].split("<li>")[1:]
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


def test_it_shows_the_hotfix_timeline_with_durations(client, release_manager, environments, monkeypatch):
    dev, qa, pre, prod = environments
    opened = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    clock = Clock(opened - timedelta(days=7))
    monkeypatch.setattr("django.utils.timezone.now", clock)
    application, (cart,) = released(environments)
    clock.at = opened
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed 2"})}, user=release_manager)
    hotfix = Hotfix.objects.get()
    clock.at = opened + timedelta(hours=1, minutes=30)
    deploy(pre, prod, application, release_manager)
    clock.at = opened + timedelta(days=1, hours=3)
    merge(application, pre, qa, release_manager)
    client.force_login(release_manager)
    url = reverse("hotfixes:hotfix", args=[hotfix.pk])

    html = client.get(url).content.decode()

    events = timeline_of(html)
    assert [re.sub(r"^\S+ \S+ ", "", event) for event in events] == [
        "Opened in Pre-Production",
        "Deployed to Production after 1 h 30 min",
        "Merged into Quality Assurance after 1 d 3 h",
    ]
    assert events[0].startswith("2025-03-03")
    assert "Mark Hotfix as Solved" in html and ">open<" in html
    assert '<li class="propagation-none" data-environment="Development">' in html

    clock.at = opened + timedelta(days=1, hours=5, minutes=20)
    merge(application, qa, dev, release_manager)
    clock.at = opened + timedelta(days=2)
    assert client.post(solve_url(hotfix)).status_code == 302
    html = client.get(url).content.decode()
    assert [re.sub(r"^\S+ \S+ ", "", event) for event in timeline_of(html)][3:] == [
        "Merged into Development after 1 d 5 h",
        "Marked solved by release-manager after 2 d 0 h",
    ]
    assert ">solved<" in html and "Mark Hotfix as Solved" not in html


def test_it_refuses_the_hotfix_page_to_an_outsider(client, outsider, hotfix):
    client.force_login(outsider)
    assert client.get(reverse("hotfixes:hotfix", args=[hotfix.pk])).status_code == 404
