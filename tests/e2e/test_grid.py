import re

from playwright.sync_api import expect

from lifecycle.models import AccessLevel
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, make_user, publish_files, released_application


def test_it_logs_in_and_sees_the_grid(page, transactional_db):
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    released_application("eCommerce", environments, module_names=("Cart", "Catalog"))
    _, (core,), _ = released_application("HR Portal", environments, number="1.2")
    publish_files(core, environments[0], {"main.py": "newer"})
    _, (fix,), _ = released_application("Customer Support", environments, number="2.1")
    publish_files(fix, environments[1], {"main.py": "hotfix"})

    log_in(page, "rm", "pw-rm")

    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    hr = page.locator('tr[data-application="HR Portal"]')
    expect(hr.locator('td[data-environment="Development"] .version')).to_have_text("1.2+")
    expect(hr.locator('td[data-environment="Production"] .version')).to_have_text("1.2")
    support_qa = page.locator(
        'tr[data-application="Customer Support"] td[data-environment="Quality Assurance"]'
    )
    expect(support_qa).to_have_class(re.compile(r"\bhotfix\b"))
    expect(support_qa.locator(".version")).to_have_css("color", "rgb(198, 40, 40)")
    screenshot(page, "grid")

    # The live name filter swaps the grid in place and keeps the URL shareable.
    page.get_by_label("Filter applications by name").fill("hr")
    expect(page.locator("tr[data-application]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=hr"))

    # The "with differences" link works as a filter and keeps the name filter.
    page.get_by_label("Filter applications by name").fill("")
    expect(page.locator("tr[data-application]")).to_have_count(3)
    page.get_by_role("link", name="With open hotfixes").click()
    expect(page.locator("tr[data-application]")).to_have_count(1)
    expect(page.locator("tr[data-application]")).to_have_attribute("data-application", "Customer Support")


def test_it_refreshes_the_grid_without_a_reload(page, transactional_db, settings):
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    _, (core,), _ = released_application("Shop", environments)
    log_in(page, "rm", "pw-rm")
    page.evaluate("window.notReloaded = true")
    cell = page.locator('tr[data-application="Shop"] td[data-environment="Development"] .version')
    expect(cell).to_have_text("0.3")

    publish_files(core, environments[0], {"main.py": "work in progress"})

    expect(cell).to_have_text("0.3+", timeout=12_000)
    assert page.evaluate("window.notReloaded") is True
