"""Live state where users see it: the grid, the application page and the API's application state."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lifecycle.models import AgentToken, Delivery, Deployment
from lifecycle.tokens import create_token
from tests.delivery.test_live import changed, deployment, open_drift, report, seen
from tests.factories import released_application
from tests.lifecycle.test_pipeline import cell

pytestmark = pytest.mark.django_db
GRID = reverse("lifecycle:pipeline")


@pytest.fixture
def shop(environments):
    """Shop released everywhere; Pre-Production and Production deliver by agent, Production's seen now."""
    application, modules, _ = released_application("Shop", environments, module_names=("Cart", "Pay"))
    for environment in environments[2:]:
        environment.delivery = Delivery.AGENT
        environment.save()
    seen(environments[-1], seconds_ago=1)
    return application, modules


def head(html, environment):
    """The text of one environment's column head, whitespace collapsed."""
    match = re.search(rf'<th scope="col" class="env-head">{re.escape(environment)}(.*?)</th>', html, re.S)
    assert match, f"no head for {environment}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_the_grid_shows_each_state_as_a_word_and_the_application_page_the_time_of_the_report(
    client, viewer, environments, shop
):
    application, _ = shop
    dev, qa, pre, production = environments
    report(application, production, reported_at=timezone.now() - timedelta(minutes=3))
    client.force_login(viewer)
    html = client.get(GRID).content.decode()
    # A row shows no time: it changes only when its state does (docs/rules.md "Live state on the grid").
    assert cell(html, "Shop", "Production")[1] == "0.3 ✓ delivered"
    assert 'data-live="delivered"' in html
    # Pre-Production's agent was never seen: offline, whatever it last said.
    assert cell(html, "Shop", "Pre-Production")[1] == "0.3 ○ agent offline no report yet"
    # Record environments show what they always showed.
    assert cell(html, "Shop", "Development")[1] == "0.3"
    assert head(html, "Production") == "Production ● agent online seen a second ago"
    assert head(html, "Pre-Production") == "○ agent offline never seen"
    assert head(html, "Development") == ""
    assert 'title="Shop in Production: delivered, 0.3 applied"' in html
    # The application page gives the time, in words and exactly.
    page = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    assert re.search(r"reported 3\s+minutes ago", page)  # naturaltime: a no-break space
    assert re.search(r'title="Shop in Production: delivered, 0.3 applied, last report \d{4}-\d\d-\d\d ', page)


@pytest.mark.parametrize(
    ("situation", "text"),
    [
        ("failed", "✗ failed"),
        ("delivering", "… delivering"),
        ("drift", "≠ drift"),
    ],
)
def test_the_grid_words(client, viewer, environments, shop, situation, text):
    application, _ = shop
    production = environments[-1]
    if situation == "failed":
        report(application, production, hook=1)
    elif situation == "delivering":
        report(application, production, applied=changed(application, production))
    else:
        report(application, production, live=changed(application, production))
    client.force_login(viewer)
    assert text in cell(client.get(GRID).content.decode(), "Shop", "Production")[1]


def test_a_cell_in_drift_links_to_its_drift(client, viewer, environments, shop):
    application, (cart, _) = shop
    production = environments[-1]
    report(application, production)
    drift = open_drift(cart, production)
    client.force_login(viewer)
    html = client.get(GRID).content.decode()
    assert f'href="{reverse("hotfixes:drift", args=[drift.pk])}"' in html
    assert "drift of Shop in Production: review it" in cell(html, "Shop", "Production")[1]


def test_the_application_page_shows_the_live_state_and_the_agent(client, viewer, environments, shop):
    application, _ = shop
    report(application, environments[-1], hook=3)
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    assert 'data-live="failed"' in html and "✗</span>\n  failed" in html
    assert "agent online" in html and "agent offline" in html


# The API.


def test_the_api_gives_each_environment_its_delivery(client, viewer, environments, shop):
    application, _ = shop
    row = report(application, environments[-1])
    raw = create_token(viewer, "CI")[1]
    response = client.get(
        reverse("api:application", args=["Shop"]), headers={"Authorization": f"Bearer {raw}"}
    )
    delivery = {cell["name"]: cell["delivery"] for cell in response.json()["environments"]}
    assert delivery == {
        "Development": {"state": "record", "version": None, "reported_at": None},
        "Quality Assurance": {"state": "record", "version": None, "reported_at": None},
        "Pre-Production": {"state": "offline", "version": None, "reported_at": None},
        "Production": {"state": "delivered", "version": "0.3", "reported_at": row.reported_at.isoformat()},
    }
    AgentToken.objects.update(last_seen_at=timezone.now() - timedelta(minutes=5))
    deployment(application, environments[-1], Deployment.Status.WAITING)
    response = client.get(
        reverse("api:application", args=["Shop"]), headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.json()["environments"][-1]["delivery"]["state"] == "offline"


# A fixed number of queries: the existing pins (9 for the grid, 12 for the API) plus the five of live state.


def _queries(client, url, **kwargs):
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, **kwargs)
    assert response.status_code == 200
    return len(context.captured_queries)


def _busy(environments, start, count):
    """Applications with reports, deployments and drifts in both agent environments."""
    for index in range(start, start + count):
        application, (cart, _), _ = released_application(f"App {index:03}", environments, ("A", "B"))
        for environment in environments[2:]:
            report(application, environment, live=changed(application, environment, f"App {index:03}-A"))
            deployment(application, environment, Deployment.Status.ERRORS)
            deployment(application, environment, Deployment.Status.WAITING)
        open_drift(cart, environments[-1])


def test_the_grid_pin_grows_by_the_five_queries_of_live_state(
    client, viewer, environments, shop, django_assert_max_num_queries
):
    _busy(environments, 0, 4)
    client.force_login(viewer)
    # And the refresh token's two (lifecycle/refresh.py): the pipeline revision, the agents online.
    with django_assert_max_num_queries(9 + 5 + 2):
        client.get(GRID)


def test_the_grid_reads_as_many_queries_for_3_and_40_applications(client, viewer, environments, shop):
    client.force_login(viewer)
    _busy(environments, 0, 2)
    few = _queries(client, GRID)
    _busy(environments, 2, 38)
    many = _queries(client, GRID)
    assert few == many
    html = client.get(GRID).content.decode()
    assert html.count('data-live="delivering"') == 41  # each waits for a deployment (Shop: no report yet)
    assert html.count('data-live="offline"') == 41  # Pre-Production's agent was never seen


def test_the_api_pin_grows_by_the_five_queries_of_live_state(
    client, viewer, environments, shop, django_assert_max_num_queries
):
    _busy(environments, 0, 3)
    application, _ = shop
    report(application, environments[-1], live=changed(application, environments[-1]))
    headers = {"Authorization": f"Bearer {create_token(viewer, 'CI')[1]}"}
    with django_assert_max_num_queries(12 + 5):
        response = client.get(reverse("api:application", args=["Shop"]), headers=headers)
    assert response.json()["environments"][-1]["delivery"]["state"] == "drift"
