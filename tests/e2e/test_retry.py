"""In the browser: Retry of a deployment that finished with errors, from two tabs.

The deployment page polls its log every second while the deployment waits; what a click
answered (the second tab's refusal) must stay on the page through those polls, and what the
page says about the deployment (ended or not) must follow it.
"""

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.delivery import confirming
from lifecycle.deploying.running import run_deployment
from lifecycle.models import Delivery, Deployment
from tests.e2e.conftest import log_in, screenshot, watched
from tests.factories import make_environments
from tests.lifecycle.deliveries import changed_in_development, report, running_hashes, start


def finished_with_errors(user):
    """Shop deployed into Quality Assurance (an agent environment) whose hook failed there."""
    environments = make_environments()
    dev, qa = environments[0], environments[1]
    qa.delivery = Delivery.AGENT
    qa.save(update_fields=["delivery"])
    shop = changed_in_development("Shop", environments)[0]
    deployment = run_deployment(start(dev, qa, shop, user).pk)
    report(qa, shop, applied=running_hashes(qa, shop), deployment=deployment, hook=3, output="boom")
    confirming.check(qa)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    return deployment


def polls_of(page, deployment, count):
    """Wait for `count` polls of the log (each swaps the status, the actions and the log)."""
    for _ in range(count):
        # A poll asks for the lines after the last one shown (?log_after=…).
        with page.expect_response(re.compile(rf"/deployments/{deployment.pk}/(\?log_after=\d+)?$")):
            pass


def test_the_second_tabs_refused_retry_stays_said_while_the_log_polls(
    page, browser, live_server, transactional_db
):
    user = User.objects.create_superuser("admin", password="demo-password")
    deployment = finished_with_errors(user)
    log_in(page, "admin", "demo-password")
    page.goto(f"/deployments/{deployment.pk}/")
    second = watched(page.context.new_page(), errors := [])
    second.goto(f"/deployments/{deployment.pk}/")
    meta = page.locator(".deployment-meta")
    expect(meta).to_contain_text("ended")

    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#status")).to_contain_text("Waiting for Quality Assurance")
    # Retried, it has not ended any more: the page no longer says when it ended.
    expect(meta).not_to_contain_text("ended")

    second.get_by_role("button", name="Retry").click()
    refusal = second.get_by_role("alert")
    expect(refusal).to_contain_text(
        f"Not retried: Deployment {deployment.pk} is waiting for Quality Assurance: only a deployment "
        "that finished with errors can be retried."
    )
    polls_of(second, deployment, 2)
    expect(refusal).to_be_visible()
    screenshot(second, "retry-second-tab-refused")
    assert not errors, f"browser console errors: {errors}"
