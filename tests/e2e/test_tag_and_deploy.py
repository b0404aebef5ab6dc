import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from lifecycle.demo import load_demo
from lifecycle.models import Environment, Module
from tests.e2e.conftest import log_in, screenshot
from tests.factories import publish_files

DEFECT = "        subtotal += line.unit_price\n"
FIX = "        subtotal += line.unit_price * line.quantity\n"


def fix_cart_in_pre_production(user):
    cart = Module.objects.get(name="ShoppingCart")
    pre = Environment.objects.get(name="Pre-Production")
    version = cart.current_versions.get(environment=pre).version
    files = {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}
    files["cart.py"] = files["cart.py"].replace(DEFECT.encode(), FIX.encode())
    publish_files(cart, pre, files, user=user, comment="Order total counts each line's quantity")


def test_it_tags_and_deploys_the_hotfix_to_production_from_the_grid(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    log_in(page, "admin", "demo-password")

    row = page.locator('tr[data-application="eCommerce"]')
    row.get_by_role("link", name="Deploy eCommerce from Pre-Production to Production").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Deploy from Pre-Production to Production")
    button = dialog.get_by_role("button", name="Tag & Deploy 0.3.1")
    expect(button).to_be_visible()
    dialog.get_by_label("Notes (optional)").fill("Hotfix: order total counts quantities")
    screenshot(page, "deploy-dialog")
    button.click()

    expect(page).to_have_url(re.compile(r"/deployments/\d+/"))
    expect(page.locator(".deployment-status, .status-badge").first).to_contain_text(
        "Finished", timeout=15_000
    )
    expect(page.get_by_text("Tagged and deployed eCommerce 0.3.1")).to_be_visible()
    screenshot(page, "deployment-log")

    page.get_by_role("link", name="Pipeline").first.click()
    row = page.locator('tr[data-application="eCommerce"]')
    pre = row.locator('td[data-environment="Pre-Production"]')
    prod = row.locator('td[data-environment="Production"]')
    expect(pre.locator(".version")).to_have_text("0.3.1")
    expect(prod.locator(".version")).to_have_text("0.3.1")
    # The hotfix still has to be merged back: Pre-Production stays red.
    expect(pre).to_have_class(re.compile(r"\bhotfix\b"))
    expect(prod).not_to_have_class(re.compile(r"\bhotfix\b"))
    screenshot(page, "grid-after-0.3.1")


def plan_versions(dialog):
    """The source's and the target's version cells of the plan's one application."""
    cells = dialog.locator(".plan-items tr[data-application] .plan-version")
    expect(cells).to_have_count(2)
    return cells.nth(0), cells.nth(1)


def test_it_shows_hotfix_states_and_holds_deploy_until_deploy_anyway(page, transactional_db):
    load_demo()
    admin = User.objects.create_superuser("admin", password="demo-password")
    fix_cart_in_pre_production(admin)
    log_in(page, "admin", "demo-password")
    dialog = page.locator("dialog#dialog")
    row = page.locator('tr[data-application="eCommerce"]')

    # Forward from the hotfix: the source side is red and labelled, as on the grid.
    row.get_by_role("link", name="Deploy eCommerce from Pre-Production to Production").click()
    source, target = plan_versions(dialog)
    expect(source).to_have_class(re.compile(r"\bhotfix\b"))
    expect(source.locator(".hotfix-label")).to_have_text("hotfix")
    expect(source.locator(".version")).to_have_css("color", "rgb(198, 40, 40)")
    expect(target).not_to_have_class(re.compile(r"\bhotfix\b"))
    expect(dialog.get_by_role("button", name="Tag & Deploy 0.3.1")).to_be_enabled()
    dialog.get_by_role("button", name="Close").click()

    # Over the hotfix: the target is red, and deploying waits for "Deploy anyway".
    row.get_by_role("link", name="Deploy eCommerce from Quality Assurance to Pre-Production").click()
    expect(dialog.get_by_role("heading")).to_have_text("Deploy from Quality Assurance to Pre-Production")
    source, target = plan_versions(dialog)
    expect(target).to_have_class(re.compile(r"\bhotfix\b"))
    expect(target.locator(".hotfix-label")).to_have_text("hotfix")
    expect(source).not_to_have_class(re.compile(r"\bhotfix\b"))
    button = dialog.locator("#deploy-button")
    expect(button).to_be_disabled()
    screenshot(page, "deploy-dialog-needs-deploy-anyway")
    anyway = dialog.get_by_label(re.compile("Deploy anyway"))
    anyway.check()
    expect(button).to_be_enabled()
    anyway.uncheck()
    expect(button).to_be_disabled()
    # Validating again swaps a new plan in, unticked: its button is held again.
    anyway.check()
    expect(button).to_be_enabled()
    dialog.get_by_role("button", name="Validate again").click()
    expect(dialog.get_by_label(re.compile("Deploy anyway"))).not_to_be_checked()
    expect(dialog.locator("#deploy-button")).to_be_disabled()
