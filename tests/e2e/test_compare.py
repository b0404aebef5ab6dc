import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from lifecycle.models import Application, Environment, Module
from tests.e2e.conftest import ARTIFACTS, log_in, screenshot
from tests.factories import publish_files

DEFECT = "        subtotal += line.unit_price\n"
FIX = "        subtotal += line.unit_price * line.quantity\n"


def fix_cart_in_pre_production(user):
    cart = Module.objects.get(name="ShoppingCart")
    pre = Environment.objects.get(name="Pre-Production")
    version = cart.current_versions.get(environment=pre).version
    files = {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}
    assert DEFECT.encode() in files["cart.py"]
    files["cart.py"] = files["cart.py"].replace(DEFECT.encode(), FIX.encode())
    publish_files(cart, pre, files, user=user, comment="Order total counts each line's quantity")


def test_it_compares_quality_assurance_and_pre_production_in_the_dialog(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    log_in(page, "admin", "demo-password")

    page.goto(f"/applications/{Application.objects.get(name='eCommerce').pk}/")
    page.get_by_role("link", name="Compare Quality Assurance and Pre-Production").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", level=1)).to_have_text(
        "Compare eCommerce: Quality Assurance and Pre-Production"
    )

    cart = dialog.locator('section[data-module="ShoppingCart"]')
    expect(cart.locator(".compare-badge")).to_have_text("changed")
    for name in ("Catalog", "Payments", "WebUI"):
        expect(dialog.locator(f'section[data-module="{name}"] .compare-badge')).to_have_text("same")

    # Quality Assurance runs the merge base; Pre-Production's side holds the one-line fix.
    expect(cart.locator('[data-side="source"]')).to_contain_text(
        "None: Quality Assurance runs the merge base"
    )
    fix = cart.locator('[data-side="target"] section[data-path="cart.py"]')
    expect(fix.locator(".diff-stat")).to_have_text("+1 −1")
    deleted, added = fix.locator(".diff-line-delete"), fix.locator(".diff-line-add")
    expect(deleted).to_have_count(1)
    expect(added).to_have_count(1)
    expect(deleted.locator(".diff-text")).to_have_text(DEFECT.rstrip("\n"))
    expect(added.locator(".diff-text")).to_have_text(FIX.rstrip("\n"))
    # Red and green, with the same line number on both sides.
    assert (
        deleted.locator(".diff-text").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(255, 235, 233)"
    )
    assert (
        added.locator(".diff-text").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(230, 255, 236)"
    )
    old_number = deleted.locator(".line-number").first.inner_text()
    assert old_number.isdigit() and added.locator(".line-number").last.inner_text() == old_number
    expect(fix.locator(".diff-fold").first).to_have_text(re.compile(r"⋯ \d+ unchanged lines"))

    merge = dialog.get_by_role("link", name="Merge these changes into Quality Assurance")
    expect(merge).to_have_attribute("href", re.compile(r"/merge/\?application=\d+&source=\d+&target=\d+"))
    fix.scroll_into_view_if_needed()
    screenshot(page, "compare-dialog")
    dialog.screenshot(path=str(ARTIFACTS / "compare-dialog-close-up.png"))


def test_it_loads_a_large_diff_when_asked(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    cart = Module.objects.get(name="ShoppingCart")
    pre = Environment.objects.get(name="Pre-Production")
    version = cart.current_versions.get(environment=pre).version
    files = {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}
    files["prices.csv"] = "".join(f"SKU-{n},{n}.99\n" for n in range(400)).encode()
    publish_files(cart, pre, files, user=admin, comment="Price list")
    log_in(page, "admin", "demo-password")

    page.goto(f"/applications/{Application.objects.get(name='eCommerce').pk}/")
    page.get_by_role("link", name="Compare Quality Assurance and Pre-Production").click()
    dialog = page.locator("dialog#dialog")
    prices = dialog.locator('section[data-path="prices.csv"]')
    expect(prices).to_contain_text("400 changed lines")
    expect(prices.locator(".diff-line")).to_have_count(0)
    prices.get_by_role("link", name="Show diff of prices.csv").click()
    expect(dialog.locator('section[data-path="prices.csv"] .diff-line-add')).to_have_count(400)
    expect(dialog).to_be_visible()
