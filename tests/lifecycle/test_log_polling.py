"""A running deployment's log polls for the lines after the last one it shows (lifecycle/history_views.py)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from lifecycle.deploying import leases
from lifecycle.deploying.running import run_deployment
from lifecycle.models import Delivery, Deployment, Environment
from tests.lifecycle.deliveries import changed_in_development, start

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def waiting(environments, release_manager):
    """Shop switched into Quality Assurance, an agent environment, and waiting for its agent."""
    shop = changed_in_development("Shop", environments)[0]
    dev, qa, _, _ = environments
    Environment.objects.filter(pk=qa.pk).update(delivery=Delivery.AGENT)
    return run_deployment(start(dev, qa, shop, release_manager).pk)


def line_ids(html):
    return [int(line) for line in re.findall(r'data-line="(\d+)"', html)]


def test_a_poll_gets_only_the_lines_after_the_last_shown_appended(waiting, client, viewer):
    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[waiting.pk])
    shown = line_ids(client.get(url).content.decode())
    assert len(shown) >= 2
    # Nothing new: no line comes back, and the log itself is not swapped.
    response = client.get(url, {"log_after": shown[-1]}, headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Reswap"] == "none"
    assert line_ids(response.content.decode()) == []
    assert 'id="status"' in response.content.decode()  # The status still comes, out of band.
    # A line logged since: only it, appended to the list.
    leases.log(waiting, "a new line from the agent")
    answer = client.get(url, {"log_after": shown[-1]}, headers=HTMX).content.decode()
    (new,) = line_ids(answer)
    assert new > shown[-1]
    assert '<ol hx-swap-oob="beforeend:#log-lines">' in answer
    assert "a new line from the agent" in answer
    assert 'id="log-empty"' not in answer  # The page had lines: no placeholder to remove.
    # Asked from the middle, the lines after that one.
    middle = client.get(url, {"log_after": shown[0]}, headers=HTMX).content.decode()
    assert line_ids(middle) == [*shown[1:], new]


def test_a_log_that_had_no_line_removes_its_placeholder(waiting, client, viewer):
    waiting.log_lines.all().delete()
    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[waiting.pk])
    assert 'id="log-empty"' in client.get(url).content.decode()
    leases.log(waiting, "first line")
    answer = client.get(url, {"log_after": "0"}, headers=HTMX).content.decode()
    assert len(line_ids(answer)) == 1
    assert '<li id="log-empty" hx-swap-oob="delete">' in answer


def test_the_poll_that_sees_it_end_gets_the_whole_log_and_stops(waiting, client, viewer):
    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[waiting.pk])
    shown = line_ids(client.get(url).content.decode())
    Deployment.objects.filter(pk=waiting.pk).update(delivery_deadline=timezone.now() - timedelta(seconds=1))
    response = client.get(url, {"log_after": shown[-1]}, headers=HTMX)
    assert response.status_code == 286
    fragment = response.content.decode()
    assert '<section id="log"' in fragment
    assert "HX-Reswap" not in response
    ids = line_ids(fragment)
    assert ids[: len(shown)] == shown and len(ids) > len(shown)  # Every line, the ending's included.
    assert 'hx-trigger="every 1s"' not in fragment


def test_a_bad_log_after_is_the_whole_log(waiting, client, viewer):
    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[waiting.pk])
    shown = line_ids(client.get(url).content.decode())
    for value in ("", "x", "-1", "²"):
        assert line_ids(client.get(url, {"log_after": value}, headers=HTMX).content.decode()) == shown
