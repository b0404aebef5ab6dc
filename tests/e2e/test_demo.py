from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from tests.e2e.conftest import log_in, screenshot


def test_it_shows_the_demo_pipeline_from_the_first_screen(page, transactional_db):
    load_demo()
    User.objects.create_superuser("admin", password="demo-password")
    log_in(page, "admin", "demo-password")

    ecommerce = page.locator('tr[data-application="eCommerce"]')
    expect(ecommerce.locator('td[data-environment="Development"] .version')).to_have_text("0.4+")
    for environment in ("Quality Assurance", "Pre-Production", "Production"):
        expect(ecommerce.locator(f'td[data-environment="{environment}"] .version')).to_have_text("0.3")
    support = page.locator('tr[data-application="Customer Support"] td[data-environment="Quality Assurance"]')
    expect(support.locator(".hotfix-label")).to_have_text("hotfix")
    screenshot(page, "demo-grid")

    page.get_by_role("link", name="eCommerce", exact=True).click()
    expect(page.get_by_role("heading", name="eCommerce")).to_be_visible()
    expect(page.locator('tr[data-module="ShoppingCart"] td').first).to_contain_text("+")
    screenshot(page, "demo-application")
