import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from hotfixes.models import Hotfix
from hotfixes.propagation import mark_solved
from lifecycle.demo import load_demo
from lifecycle.models import Environment
from tests.e2e.conftest import log_in, screenshot
from tests.e2e.test_tag_and_deploy import fix_cart_in_pre_production


def test_it_reaches_a_solved_hotfixs_timeline_from_the_navigation(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    hotfix = Hotfix.objects.get(application__name="eCommerce", environment__name="Pre-Production")
    mark_solved(hotfix.pk, list(Environment.objects.all()), user=admin, confirm_incomplete=True)
    log_in(page, "admin", "demo-password")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Hotfixes").click()
    expect(page).to_have_url(re.compile(r"/hotfixes/$"))
    expect(page.get_by_role("heading", name="Hotfixes", level=1)).to_be_visible()
    page.get_by_label("Status").select_option("solved")
    expect(page).to_have_url(re.compile(r"state=solved"))
    row = page.locator(f'tr[data-hotfix="{hotfix.pk}"]')
    expect(page.locator("tr[data-hotfix]")).to_have_count(1)
    expect(row).to_contain_text("solved incomplete")
    expect(row).to_contain_text("eCommerce")
    expect(row).to_contain_text("Pre-Production")
    screenshot(page, "hotfix-list")

    row.get_by_role("link", name=re.compile("Timeline")).click()
    expect(page).to_have_url(re.compile(rf"/hotfixes/{hotfix.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hotfix of eCommerce in Pre-Production")
    expect(page.locator(".timeline li").first).to_be_visible()
    screenshot(page, "hotfix-timeline-solved")

    # The application page leads to the same list, filtered to it.
    page.get_by_role("link", name="eCommerce").first.click()
    page.get_by_role("link", name="All hotfixes of eCommerce").click()
    expect(page.locator(f'tr[data-hotfix="{hotfix.pk}"]')).to_be_visible()
    expect(page.get_by_label("Application")).to_have_value(str(hotfix.application_id))
