"""The compare dialog offers only the backward merge, as its primary action, and labels the hotfix."""

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from lifecycle.models import Application
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.e2e.test_compare import fix_cart_in_pre_production


def open_compare(page, left, right):
    page.goto(f"/applications/{Application.objects.get(name='eCommerce').pk}/")
    page.get_by_role("link", name=f"Compare {left} and {right}").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog.get_by_role("heading", level=1)).to_have_text(f"Compare eCommerce: {left} and {right}")
    return dialog


def test_the_compare_dialog_offers_only_the_backward_merge_as_its_primary_action(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    log_in(page, "admin", "demo-password")

    # Development's newer work moves forward by Tag & Deploy: no merge is offered into Quality Assurance.
    dialog = open_compare(page, "Development", "Quality Assurance")
    expect(dialog.locator(".compare-forward")).to_contain_text(
        "Development has changes that Quality Assurance lacks: they reach Quality Assurance by Tag & Deploy"
    )
    expect(
        dialog.get_by_role("link", name=re.compile("Merge these changes into Quality Assurance"))
    ).to_have_count(0)
    dialog.screenshot(path=str(ARTIFACTS / "compare-dialog-forward.png"))

    # Pre-Production's hotfix goes back into Quality Assurance: the primary action, labelled.
    dialog = open_compare(page, "Quality Assurance", "Pre-Production")
    merge = dialog.get_by_role("link", name="Merge these changes into Quality Assurance")
    expect(merge).to_have_class(re.compile(r"\bprimary\b"))
    expect(dialog.locator(".button.primary")).to_have_count(1)
    expect(dialog.locator(".compare-merge-backward")).to_contain_text(
        "merging them propagates the hotfix back into Quality Assurance"
    )
    expect(dialog.locator("section.compare-module").first).to_have_attribute("data-module", "ShoppingCart")
    cart = dialog.locator('section[data-module="ShoppingCart"]')
    expect(cart.locator(".compare-module-head .hotfix-label")).to_have_text("hotfix")
    expect(cart.locator('[data-side="target"] [data-path="cart.py"] .hotfix-label')).to_have_text(
        "hotfix change"
    )
    dialog.screenshot(path=str(ARTIFACTS / "compare-dialog-backward.png"))

    merge.click()
    expect(
        page.get_by_role("heading", name="Merge eCommerce from Pre-Production into Quality Assurance")
    ).to_be_visible()
    expect(page.get_by_text("This propagates the open hotfix of Pre-Production")).to_be_visible()
    screenshot(page, "merge-from-compare-dialog")
