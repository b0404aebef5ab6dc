"""The seed's whole walkthrough in the browser, on the demo pipeline."""

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from tests.e2e.conftest import log_in, screenshot

DEFECT = "        subtotal += line.unit_price\n"
FIX = "        subtotal += line.unit_price * line.quantity\n"


def open_application(page):
    page.get_by_role("link", name="Pipeline").first.click()
    page.get_by_role("link", name="eCommerce", exact=True).click()
    expect(page.get_by_role("heading", name="eCommerce", exact=True)).to_be_visible()


def merge_from_compare(page, left, right, target):
    open_application(page)
    page.get_by_role("link", name=f"Compare {left} and {right}").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog.locator('[data-module="ShoppingCart"]').first).to_be_visible()
    dialog.get_by_role("link", name=f"Merge these changes into {target}").click()
    expect(page.get_by_role("heading", name=re.compile(f"into {target}"))).to_be_visible()
    expect(page.locator('[data-module="ShoppingCart"] [data-path="cart.py"]')).to_be_visible()
    expect(page.locator(".region-conflict")).to_have_count(0)
    screenshot(page, f"merge-into-{target.lower().replace(' ', '-')}")
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.get_by_text(re.compile(f"Merged ShoppingCart from .* into {target}"))).to_be_visible()


def test_it_walks_the_seed_from_the_defect_to_solved(page, transactional_db):
    load_demo()
    User.objects.create_superuser("admin", password="demo-password")
    log_in(page, "admin", "demo-password")

    # Fix the defect in Pre-Production.
    page.get_by_role("link", name="eCommerce", exact=True).click()
    page.locator('tr[data-module="ShoppingCart"] td').nth(2).get_by_role("link").first.click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("link", name="cart.py", exact=True).click()
    editor = page.get_by_label("Content of cart.py")
    editor.fill(editor.input_value().replace(DEFECT, FIX))
    page.get_by_role("button", name="Save file").click()
    page.get_by_label("Comment").fill("Order total counts each line's quantity")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text(re.compile("This change is tracked as a hotfix"))).to_be_visible()

    # Tag & Deploy 0.3.1 to Production from the grid.
    page.get_by_role("link", name="Pipeline").first.click()
    page.get_by_role("link", name="Deploy eCommerce from Pre-Production to Production").click()
    page.locator("dialog#dialog").get_by_role("button", name="Tag & Deploy 0.3.1").click()
    expect(page.locator(".deployment-status").first).to_contain_text("Finished", timeout=15_000)

    # Merge back into Quality Assurance, then into Development (a real three-way merge there).
    merge_from_compare(page, "Quality Assurance", "Pre-Production", "Quality Assurance")
    merge_from_compare(page, "Development", "Quality Assurance", "Development")

    # Every environment contains the fix: Mark Hotfix as Solved.
    hotfix = page.locator("[data-hotfix]").filter(has_text="Hotfix in Pre-Production")
    expect(hotfix.locator(".propagation-all")).to_have_count(3)
    screenshot(page, "walkthrough-before-solved")
    hotfix.get_by_role("button", name="Mark Hotfix as Solved").click()
    expect(page.get_by_text("Marked the hotfix of eCommerce in Pre-Production as solved.")).to_be_visible()

    page.get_by_role("link", name="Pipeline").first.click()
    row = page.locator('tr[data-application="eCommerce"]')
    expect(row.locator("td.hotfix")).to_have_count(0)
    # Quality Assurance holds exactly 0.3.1's files after the merge: it shows 0.3.1, no phantom `+`.
    expect(row.locator(".version")).to_have_text(["0.4+", "0.3.1", "0.3.1", "0.3.1"])
    screenshot(page, "walkthrough-solved-grid")
