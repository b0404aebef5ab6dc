import re

from playwright.sync_api import expect

from lifecycle.models import AccessLevel, Application
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


def two_applications_with_differences(environments):
    """Shop and Stock, each with work in Development and a hotfix in Pre-Production."""
    for name in ("Shop", "Stock"):
        _, (core,), _ = released_application(name, environments)
        publish_files(core, environments[0], {"main.py": f"{name} work"})
        publish_files(core, environments[2], {"main.py": f"{name} fix"})


def open_arrow(page, application, source, target):
    """Open the deploy dialog from the grid's arrow, check it shows that plan, and close it."""
    row = page.locator(f'tr[data-application="{application}"]')
    row.get_by_role("link", name=f"Deploy {application} from {source} to {target}").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text(f"Deploy from {source} to {target}")
    expect(dialog.locator(f'.plan-items tr[data-application="{application}"]')).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    # The dialog keeps its body: the next arrow has a target to load into.
    expect(page.locator("#dialog > #dialog-body")).to_have_count(1)


def test_it_opens_a_deploy_dialog_from_every_arrow_in_turn(page, transactional_db, settings):
    """The arrows sit in #grid (hx-swap="outerHTML"): the dialog once replaced #dialog-body itself."""
    settings.GRID_REFRESH_SECONDS = 1
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    two_applications_with_differences(environments)
    log_in(page, "rm", "pw-rm")

    open_arrow(page, "Shop", "Development", "Quality Assurance")
    open_arrow(page, "Stock", "Pre-Production", "Production")
    open_arrow(page, "Shop", "Pre-Production", "Production")
    screenshot(page, "grid-after-three-dialogs")

    # After the grid's own refresh swapped a changed row, that row's new arrows open the dialog too.
    page.evaluate("document.querySelector('tr[data-application=Stock]').dataset.old = 'yes'")
    stock = Application.objects.get(name="Stock").modules.get()
    publish_files(stock, environments[1], {"main.py": "Stock, tried in QA"})  # QA shows 0.3+ now
    expect(page.locator("tr[data-application=Stock]")).to_have_count(1)
    expect(page.locator("tr[data-application=Stock][data-old]")).to_have_count(0)
    open_arrow(page, "Stock", "Development", "Quality Assurance")


def test_it_keeps_the_page_within_768_pixels(page, transactional_db):
    """A narrow screen: the header wraps, the grid scrolls inside its own box, the page never sideways."""
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments}, is_staff=True)
    two_applications_with_differences(environments)
    page.set_viewport_size({"width": 768, "height": 900})
    log_in(page, "rm", "pw-rm")
    expect(page.locator("tr[data-application]")).to_have_count(2)
    screenshot(page, "grid-768")

    sizes = page.evaluate(
        """() => {
          const header = document.querySelector('.topbar');
          const grid = document.getElementById('grid');
          return {
            page: document.documentElement.scrollWidth,
            header: header.scrollWidth,
            headerBox: header.clientWidth,
            headerRight: header.getBoundingClientRect().right,
            gridRight: grid.getBoundingClientRect().right,
          };
        }"""
    )
    assert sizes["page"] <= 768, sizes
    assert sizes["header"] <= sizes["headerBox"], sizes
    assert sizes["headerRight"] <= 768 and sizes["gridRight"] <= 768, sizes
    # Every link of the navigation is inside the screen.
    for link in page.locator(".topbar a, .topbar button").all():
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 768, (link.inner_text(), box)


def test_it_filters_and_goes_back_without_console_errors(page, transactional_db):
    """Filtering swaps the grid and pushes the URL; Back restores the whole page, not the grid alone.

    The page fixture fails the test on any console error, a Content-Security-Policy violation included.
    """
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    two_applications_with_differences(environments)
    released_application("Quiet", environments)
    log_in(page, "rm", "pw-rm")
    rows = page.locator("tr[data-application]")
    expect(rows).to_have_count(3)

    page.get_by_label("Filter applications by name").fill("St")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="With differences").click()
    expect(page).to_have_url(re.compile(r"show=differences"))
    page.get_by_label("Filter applications by name").fill("Qu")
    expect(page.locator(".empty-state")).to_have_text("No applications with differences match “Qu”.")
    screenshot(page, "grid-filtered-empty")

    page.go_back()
    expect(page.get_by_role("link", name="With differences")).to_have_attribute("aria-current", "true")
    expect(rows).to_have_count(1)
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=St(&show=)?$"))
    # Wait for the page the server sent back: the filters it shows are those of that address.
    expect(page.get_by_role("link", name="All")).to_have_attribute("aria-current", "true")
    expect(page.get_by_label("Filter applications by name")).to_have_value("St")
    # The whole page came back: the header, the filter and the grid, which still refreshes in place.
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    expect(page.get_by_label("Filter applications by name")).to_be_visible()
    expect(page.locator("header.topbar")).to_have_count(1)
    page.get_by_label("Filter applications by name").fill("")
    expect(rows).to_have_count(3)
