"""Propagate all the way and the Back button: the page is prepared afresh every time it is shown."""

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from lifecycle.models import Application, CurrentVersion, Environment, Module
from tests.e2e.conftest import log_in, screenshot
from tests.e2e.test_compare import FIX, fix_cart_in_pre_production


def cart_in(name):
    cart = Module.objects.get(name="ShoppingCart")
    version = CurrentVersion.objects.get(module=cart, environment__name=name).version
    return bytes(version.files.get(path="cart.py").blob.data).decode()


def test_back_to_propagate_after_merging_one_environment_prepares_it_afresh(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    log_in(page, "admin", "demo-password")
    page.goto(f"/applications/{Application.objects.get(name='eCommerce').pk}/")

    page.locator("[data-hotfix]").get_by_role("link", name="Propagate all the way").click()
    expect(page.get_by_role("heading", name=re.compile("Propagate the hotfix of eCommerce"))).to_be_visible()
    steps = page.locator(".propagation-steps > li")
    expect(steps).to_have_count(2)
    qa_step = page.locator('li[data-environment="Quality Assurance"]')
    expect(qa_step.locator('[data-path="cart.py"]')).to_contain_text("1 hunk")
    expect(page.get_by_role("button", name="Merge into all 2 environments")).to_be_visible()
    screenshot(page, "propagate-before")

    # Away: merge the hotfix into Quality Assurance alone, through its merge page.
    qa_step.get_by_role("link", name=re.compile("See the merged result in Quality Assurance")).click()
    expect(page.get_by_role("heading", name=re.compile("into Quality Assurance"))).to_be_visible()
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(
        page.get_by_text("Merged ShoppingCart from Pre-Production into Quality Assurance.")
    ).to_be_visible()
    assert FIX in cart_in("Quality Assurance") and FIX not in cart_in("Development")

    # Back to the merge page, then back to the propagation: both are shown as they are now.
    page.go_back()
    expect(
        page.get_by_text("Quality Assurance already contains every change of Pre-Production")
    ).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name=re.compile("Propagate the hotfix of eCommerce"))).to_be_visible()
    expect(qa_step).to_contain_text("Already contains the hotfix.")
    development = page.locator('li[data-environment="Development"]')
    expect(development).not_to_contain_text("Already contains the hotfix.")
    expect(development.locator('[data-path="cart.py"]')).to_contain_text("1 hunk")
    button = page.get_by_role("button", name="Merge into Development")
    expect(button).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Merge into all"))).to_have_count(0)
    screenshot(page, "propagate-after-back")

    page.get_by_label("Comment").fill("Quantities count in Development too")
    button.click()
    expect(page.get_by_text("Merged the hotfix into Development.")).to_be_visible()
    assert FIX in cart_in("Development")
    hotfix = page.locator("[data-hotfix]").filter(has_text="Hotfix in Pre-Production")
    expect(hotfix.locator('[data-environment="Development"]')).to_have_class("propagation-all")
    dev = Environment.objects.get(name="Development")
    cart = Module.objects.get(name="ShoppingCart")
    assert cart.current_versions.get(environment=dev).version.comment == "Quantities count in Development too"
    screenshot(page, "propagate-done")
