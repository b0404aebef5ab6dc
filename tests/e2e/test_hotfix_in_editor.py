import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from tests.e2e.conftest import log_in, screenshot

DEFECT = "        subtotal += line.unit_price\n"
FIX = "        subtotal += line.unit_price * line.quantity\n"


def test_it_fixes_the_cart_defect_in_pre_production_through_the_editor(page, transactional_db):
    load_demo()
    User.objects.create_superuser("admin", password="demo-password")
    log_in(page, "admin", "demo-password")

    page.get_by_role("link", name="eCommerce", exact=True).click()
    cart_row = page.locator('tr[data-module="ShoppingCart"]')
    # Columns: Development, Quality Assurance, Pre-Production, Production.
    cart_row.locator("td").nth(2).get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("ShoppingCart"))).to_contain_text("Pre-Production")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_text("makes a hotfix")).to_be_visible()
    page.get_by_role("link", name="cart.py", exact=True).click()
    editor = page.get_by_label("Content of cart.py")
    source = editor.input_value()
    assert DEFECT in source
    editor.fill(source.replace(DEFECT, FIX))
    page.get_by_role("button", name="Save file").click()
    expect(page.get_by_text("Saved cart.py in your draft.")).to_be_visible()
    expect(page.locator(".file-tree li.status-changed")).to_contain_text("cart.py")
    page.get_by_label("Comment").fill("Order total counts each line's quantity")
    screenshot(page, "editor-before-publish")
    page.get_by_role("button", name="Publish", exact=True).click()

    expect(page.get_by_text(re.compile(r"Published ShoppingCart v\d+ to Pre-Production"))).to_be_visible()
    page.get_by_role("link", name="Pipeline").first.click()
    cell = page.locator('tr[data-application="eCommerce"] td[data-environment="Pre-Production"]')
    expect(cell.locator(".version")).to_have_text("0.3+")
    expect(cell).to_have_class(re.compile(r"\bhotfix\b"))
    expect(cell.locator(".version")).to_have_css("color", "rgb(198, 40, 40)")
    expect(cell.locator(".hotfix-label")).to_have_text("hotfix")
    screenshot(page, "grid-after-hotfix")

    page.get_by_role("link", name="eCommerce", exact=True).click()
    expect(page.locator('tr[data-module="ShoppingCart"] td').nth(2).locator(".hotfix-plus")).to_be_visible()
    expect(page.get_by_text("Hotfix in Pre-Production")).to_be_visible()
