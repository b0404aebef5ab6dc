"""A running deployment's timer: the server says how long it has run; the page's script ticks it on."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from lifecycle.models import Deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(environments, release_manager):
    return Deployment.objects.create(
        source=environments[0],
        target=environments[1],
        started_by=release_manager,
        started_at=timezone.now() - timedelta(seconds=75),
        # Its worker renewed the lease just now: it is running, not stopped 75 s ago.
        heartbeat_at=timezone.now(),
        worker="web-1:4242",
    )


def timers(page):
    return re.findall(r'<span class="running-timer" data-elapsed="([0-9.]+)">([^<]+)</span>', page)


def test_a_running_deployment_hands_its_timer_to_the_script(client, release_manager, running):
    client.force_login(release_manager)
    url = reverse("lifecycle:deployment", args=[running.pk])
    for headers in ({}, {"HX-Request": "true"}):
        ((elapsed, shown),) = timers(client.get(url, headers=headers).content.decode())
        assert 75 <= float(elapsed) < 80
        assert shown.startswith("1 min 1")
    ((elapsed, _),) = timers(client.get(reverse("lifecycle:deployments")).content.decode())
    assert 75 <= float(elapsed) < 80


def test_a_finished_deployment_shows_how_long_it_took(client, release_manager, running):
    running.status = Deployment.Status.FINISHED
    running.finished_at = running.started_at + timedelta(seconds=3)
    running.save()
    client.force_login(release_manager)
    page = client.get(reverse("lifecycle:deployment", args=[running.pk])).content.decode()
    assert not timers(page)
    assert "took 3.0 s" in page
