from playwright.sync_api import expect

from lifecycle.models import AccessLevel, ApplicationBlock
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, make_user, released_application


def test_it_blocks_and_unblocks_an_application_in_production(page, transactional_db):
    environments = make_environments()
    make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    released_application("Shop", environments, module_names=("Cart", "Catalog"))

    log_in(page, "rm", "pw-rm")
    page.get_by_role("link", name="Shop", exact=True).click()
    blocking = page.locator("#blocking")
    production = blocking.locator('tr[data-environment="Production"]')
    expect(production).to_contain_text("Not blocked")

    page.get_by_label("Reason to block in Production").fill("Quarter-end freeze <until Monday>")
    page.get_by_role("button", name="Block in Production").click()

    expect(blocking).to_contain_text("Blocked Shop in Production")
    expect(production).to_contain_text("Blocked in Production: Quarter-end freeze <until Monday>")
    expect(production).to_contain_text("by rm on")
    expect(blocking).to_have_class("panel blocking-panel blocked")
    assert (
        ApplicationBlock.objects.get(unblocked_at__isnull=True).reason == "Quarter-end freeze <until Monday>"
    )
    screenshot(page, "application-blocked")

    # Still shown after a reload: it is the page's state, not just the swapped fragment.
    page.reload()
    expect(page.locator('#blocking tr[data-environment="Production"]')).to_contain_text(
        "Blocked in Production: Quarter-end freeze"
    )

    page.get_by_label("Reason to unblock in Production").fill("Freeze over")
    page.get_by_role("button", name="Unblock in Production").click()
    expect(blocking).to_contain_text("Unblocked Shop in Production")
    expect(production).to_contain_text("Not blocked")
    lifted = ApplicationBlock.objects.get()
    assert lifted.unblocked_at is not None and lifted.unblock_reason == "Freeze over"
    screenshot(page, "application-unblocked")
