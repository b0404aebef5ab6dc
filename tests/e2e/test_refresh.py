"""The grid's conditional refresh in a browser: unchanged polls keep the page, a change swaps its row alone,
and a hidden tab does not poll (lifecycle/refresh.py, static/js/stageboard.js)."""

from playwright.sync_api import expect

from lifecycle.models import AccessLevel
from tests.e2e.conftest import log_in
from tests.factories import make_environments, make_user, publish_files, released_application

HIDE = """hidden => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  const state = () => (hidden ? 'hidden' : 'visible');
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: state});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def refreshes(page):
    """The grid's refresh requests (its only POSTs) the page makes from now on."""
    seen = []
    page.on(
        "request", lambda request: request.method == "POST" and request.url.endswith("/") and seen.append(1)
    )
    return seen


def test_an_unchanged_poll_keeps_the_page_and_a_change_swaps_only_its_row(page, transactional_db, settings):
    settings.GRID_REFRESH_SECONDS = 1
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    _, (shop,), _ = released_application("Shop", environments)
    released_application("Stock", environments)
    log_in(page, "rm", "pw-rm")
    page.evaluate("document.querySelectorAll('#grid, #grid tr').forEach(e => e.dataset.old = 'yes')")

    # Unchanged: 204, and htmx leaves the page as it is.
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        pass
    assert answer.value.status == 204
    expect(page.locator("#grid[data-old]")).to_have_count(1)

    publish_files(shop, environments[0], {"main.py": "new work"})
    shop_dev = page.locator('tr[data-application="Shop"] td[data-environment="Development"] .version')
    expect(shop_dev).to_have_text("0.3+")
    # Only Shop's row was replaced: the grid and Stock's row are the same elements.
    expect(page.locator('tr[data-application="Shop"][data-old]')).to_have_count(0)
    expect(page.locator('tr[data-application="Stock"][data-old]')).to_have_count(1)
    expect(page.locator("#grid[data-old]")).to_have_count(1)
    # The new revision is kept: the next polls are 204 again.
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        pass
    assert answer.value.status == 204
    # The swapped row's deploy arrow works like the others.
    page.locator('tr[data-application="Shop"]').get_by_role(
        "link", name="Deploy Shop from Development to Quality Assurance"
    ).click()
    expect(page.locator("dialog#dialog")).to_be_visible()


def test_a_hidden_tab_does_not_poll_and_checks_at_once_when_shown(page, transactional_db, settings):
    settings.GRID_REFRESH_SECONDS = 600  # Only the refreshes this test asks for.
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    _, (shop,), _ = released_application("Shop", environments)
    log_in(page, "rm", "pw-rm")
    seen = refreshes(page)

    page.evaluate(HIDE, True)
    page.evaluate("htmx.trigger(document.getElementById('grid'), 'refresh-now')")
    publish_files(shop, environments[0], {"main.py": "work while hidden"})
    page.wait_for_timeout(500)
    assert seen == []  # The poll was skipped while hidden.
    shop_dev = page.locator('tr[data-application="Shop"] td[data-environment="Development"] .version')
    expect(shop_dev).to_have_text("0.3")

    page.evaluate(HIDE, False)  # Shown again: it asks at once, not in 10 minutes.
    expect(shop_dev).to_have_text("0.3+")
    assert len(seen) == 1
