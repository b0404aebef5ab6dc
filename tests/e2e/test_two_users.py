"""Two people acting at once on the same thing: one wins, the other is told and keeps their text.

Alice and Bob, each in their own browser context (their own session), open the same page before
either acts: the editor, the merge page, the application page, the deploy dialog. Alice acts first;
Bob acting second is refused with what changed and by whom, and nothing is done twice.
"""

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from hotfixes.merging import perform, prepare
from hotfixes.models import Hotfix, Merge
from lifecycle.deploying.switching import deploy_tag
from lifecycle.editing import draft_files
from lifecycle.models import (
    AccessLevel,
    Application,
    ApplicationTag,
    CurrentVersion,
    Deployment,
    Draft,
    Environment,
    Module,
    ModuleVersion,
)
from lifecycle.tagging import tag_environment
from tests.e2e.conftest import log_in, screenshot, watched
from tests.factories import make_application, make_environments, make_user, publish_files

CART = "def total(lines):\n    return sum(line.price for line in lines)\n"
FIX = "def total(lines):\n    return sum(line.price * line.quantity for line in lines)\n"
ALICE_LINE = "# Alice: totals count quantities\n"
BOB_LINE = "# Bob: discounts come later\n"


@dataclass
class World:
    application: Application
    cart: Module
    development: Environment
    qa: Environment
    pre: Environment
    production: Environment


@pytest.fixture
def world(transactional_db):
    """Shop 0.3 (one module, Shop-Cart) running in every environment; alice and bob have full access."""
    environments = make_environments()
    alice = make_user("alice", dict.fromkeys(environments, AccessLevel.FULL))
    make_user("bob", dict.fromkeys(environments, AccessLevel.FULL))
    application, (cart,) = make_application("Shop", ["Cart"])
    development = environments[0]
    publish_files(cart, development, {"cart.py": CART, "README.md": "# Cart\n"}, user=alice, comment="Cart")
    tag = tag_environment(application, development, "0.3", user=alice)
    for environment in environments[1:]:
        deploy_tag(tag, environment, user=alice)
    return World(application, cart, *environments)


@pytest.fixture
def users(browser, live_server, world):
    """Alice's page and Bob's page, each in its own browser context, both logged in."""
    errors, contexts, pages = [], [], []
    for username in ("alice", "bob"):
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
        contexts.append(context)
        page = watched(context.new_page(), errors)
        log_in(page, username, f"pw-{username}")
        expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
        pages.append(page)
    yield pages
    for context in contexts:
        context.close()
    # A CSP violation or a script error is a failure, even when the page looked right.
    assert not errors, f"browser console errors: {errors}"


def content(module, environment, path="cart.py"):
    version = CurrentVersion.objects.get(module=module, environment=environment).version
    return version, bytes(version.files.get(path=path).blob.data).decode()


def fix_cart_in_pre_production(world):
    """A hotfix in Pre-Production, published by alice: the total counts quantities."""
    alice = world_user("alice")
    publish_files(world.cart, world.pre, {"cart.py": FIX, "README.md": "# Cart\n"}, user=alice, comment="Fix")


def world_user(username):
    return User.objects.get(username=username)


def posted(page, path):
    """Expect the next response to a POST to `path` (returned as the `value` of the context manager)."""
    return page.expect_response(lambda response: response.request.method == "POST" and path in response.url)


# 1. The editor: each has their own draft; the second publish is refused and keeps its draft.


def open_editor(page, world):
    page.goto(f"/modules/{world.cart.pk}/in/{world.pre.pk}/edit/?path=cart.py")
    return page.get_by_label("Content of cart.py")


def publish_both(alice, bob, world):
    """Alice and Bob open the editor, each changes cart.py in their own draft; Alice publishes first,
    then Bob: his publish is refused (409) with who changed the module."""
    editor_a = open_editor(alice, world)
    editor_b = open_editor(bob, world)
    expect(editor_b).to_have_value(CART)

    editor_a.fill(CART + ALICE_LINE)
    alice.get_by_role("button", name="Save file").click()
    expect(alice.get_by_text("Saved cart.py in your draft.")).to_be_visible()
    editor_b.fill(CART + BOB_LINE)
    bob.get_by_role("button", name="Save file").click()
    expect(bob.get_by_text("Saved cart.py in your draft.")).to_be_visible()

    alice.get_by_label("Comment").fill("Alice's change")
    alice.get_by_role("button", name="Publish", exact=True).click()
    expect(alice.get_by_text("Published Shop-Cart v2 to Pre-Production.")).to_be_visible()

    bob.get_by_label("Comment").fill("Bob's change")
    with posted(bob, "/edit/publish") as response:
        bob.get_by_role("button", name="Publish", exact=True).click()
    assert response.value.status == 409
    refusal = bob.get_by_role("alert").filter(has_text="Not published")
    expect(refusal).to_contain_text("Shop-Cart changed in Pre-Production while you were editing")
    expect(refusal).to_contain_text("alice made version 2 current")
    expect(refusal).to_contain_text("Your draft is kept.")


def test_the_second_publish_of_the_same_module_is_refused_and_keeps_its_draft(users, world):
    alice, bob = users
    publish_both(alice, bob, world)
    # Bob's comment is still on screen, and his draft is kept as it was, his cart.py marked changed.
    expect(bob.get_by_label("Comment")).to_have_value("Bob's change")
    files = bob.get_by_role("navigation", name="Files in your draft")
    expect(files.get_by_role("listitem").filter(has_text="cart.py")).to_contain_text("changed")
    screenshot(bob, "two-users-publish-refused")
    draft = Draft.objects.get(user__username="bob", module=world.cart, environment=world.pre)
    assert draft.base_version.number == 1
    assert draft_files(draft)["cart.py"] == (CART + BOB_LINE).encode()

    # Pre-Production holds Alice's change only, under her comment.
    version, text = content(world.cart, world.pre)
    assert (version.number, version.comment, text) == (2, "Alice's change", CART + ALICE_LINE)
    assert ModuleVersion.objects.filter(module=world.cart).count() == 2

    # Bob starts again from the new version: it holds Alice's change, and his own goes on top.
    bob.get_by_role("button", name="Discard draft").click()
    expect(bob.get_by_text("Discarded your draft of Shop-Cart.")).to_be_visible()
    editor_b = open_editor(bob, world)
    expect(bob.get_by_text("Your draft starts from v2")).to_be_visible()
    expect(editor_b).to_have_value(CART + ALICE_LINE)
    editor_b.fill(CART + ALICE_LINE + BOB_LINE)
    bob.get_by_role("button", name="Save file").click()
    bob.get_by_label("Comment").fill("Bob's change, on Alice's")
    bob.get_by_role("button", name="Publish", exact=True).click()
    expect(bob.get_by_text("Published Shop-Cart v3 to Pre-Production.")).to_be_visible()
    assert content(world.cart, world.pre)[1] == CART + ALICE_LINE + BOB_LINE


def test_the_refused_publish_leads_back_to_the_kept_text(users, world):
    alice, bob = users
    publish_both(alice, bob, world)
    # The refusal shows the draft's first file; Bob's text is one click away, in the file tree.
    bob.get_by_role("navigation", name="Files in your draft").get_by_role("link", name="cart.py").click()
    expect(bob.get_by_label("Content of cart.py")).to_have_value(CART + BOB_LINE, timeout=3_000)


# 2. The merge page: the second Merge is told the environments changed and sees it prepared again.


def merge_url(world, source, target):
    return f"/merge/?application={world.application.pk}&source={source.pk}&target={target.pk}"


def test_the_second_merge_of_the_same_hotfix_is_refused_and_prepared_again(users, world):
    alice, bob = users
    fix_cart_in_pre_production(world)
    for page in users:
        page.goto(merge_url(world, world.pre, world.qa))
        heading = page.get_by_role("heading", name="Merge Shop from Pre-Production into Quality Assurance")
        expect(heading).to_be_visible()
        expect(page.locator('[data-module="Shop-Cart"] [data-path="cart.py"]')).to_be_visible()
    qa_versions = ModuleVersion.objects.filter(module=world.cart).count()

    alice.get_by_role("button", name="Merge", exact=True).click()
    expect(alice.get_by_text("Merged Shop-Cart from Pre-Production into Quality Assurance.")).to_be_visible()

    with posted(bob, "/merge/") as response:
        bob.get_by_role("button", name="Merge", exact=True).click()
    assert response.value.status == 409
    expect(bob.get_by_role("alert")).to_contain_text(
        "Pre-Production or Quality Assurance changed after this merge was prepared. "
        "It has been prepared again: check it and merge."
    )
    # Prepared again: Quality Assurance now has it all, so there is nothing left to merge.
    expect(bob.locator(".empty-state")).to_have_text(
        "Quality Assurance already contains every change of Pre-Production: nothing to merge."
    )
    expect(bob.get_by_role("button", name="Merge", exact=True)).to_have_count(0)
    screenshot(bob, "two-users-merge-refused")

    # Merged once: one merge record, one new version, and it is Alice's.
    merge = Merge.objects.get()
    assert merge.user.username == "alice"
    assert ModuleVersion.objects.filter(module=world.cart).count() == qa_versions + 1
    version, text = content(world.cart, world.qa)
    assert text == FIX and version.merged_from is not None


# 3. Mark Hotfix as Solved: the second is told who solved it first.


def propagate_everywhere(world):
    """Alice merges the hotfix back into Quality Assurance and Development and deploys it to Production."""
    alice = world_user("alice")
    for target in (world.qa, world.development):
        prepared = prepare(world.application, world.pre, target)
        perform(prepared, user=alice, fingerprint=prepared.fingerprint, comment="Propagate")
    tag = tag_environment(world.application, world.pre, "0.3.1", user=alice)
    deploy_tag(tag, world.production, user=alice)


def test_the_second_mark_solved_is_told_who_solved_it(users, world):
    alice, bob = users
    fix_cart_in_pre_production(world)
    propagate_everywhere(world)
    hotfix = Hotfix.objects.get()
    for page in users:
        page.goto(f"/applications/{world.application.pk}/")
        entry = page.locator(f'[data-hotfix="{hotfix.pk}"]')
        expect(entry.locator(".propagation-all")).to_have_count(3)

    alice.locator(f'[data-hotfix="{hotfix.pk}"]').get_by_role("button", name="Mark Hotfix as Solved").click()
    expect(alice.get_by_text("Marked the hotfix of Shop in Pre-Production as solved.")).to_be_visible()
    hotfix.refresh_from_db()
    solved_at = hotfix.solved_at

    bob.locator(f'[data-hotfix="{hotfix.pk}"]').get_by_role("button", name="Mark Hotfix as Solved").click()
    already = re.compile(r"^This hotfix was already marked solved by alice at \d\d:\d\d\.$")
    expect(bob.locator(".message-error")).to_have_text(already)
    expect(bob.get_by_text("Marked the hotfix of Shop in Pre-Production as solved.")).to_have_count(0)
    # The page now shows it as it is: no open hotfix left to solve.
    expect(bob.locator("[data-hotfix]")).to_have_count(0)
    screenshot(bob, "two-users-solve-refused")

    hotfix.refresh_from_db()
    assert (hotfix.solved_by.username, hotfix.solved_at) == ("alice", solved_at)


# 4. The deploy dialog: the second deploy of the same plan is refused; one deployment ran.


def open_deploy_dialog(page):
    page.goto("/")
    page.locator('tr[data-application="Shop"]').get_by_role(
        "link", name="Deploy Shop from Pre-Production to Production"
    ).click()
    dialog = page.locator("dialog#dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Deploy from Pre-Production to Production")
    return dialog


def test_the_second_deploy_of_the_same_plan_is_refused(users, world):
    alice, bob = users
    fix_cart_in_pre_production(world)
    dialog_a = open_deploy_dialog(alice)
    dialog_b = open_deploy_dialog(bob)
    expect(dialog_b.get_by_role("button", name="Tag & Deploy 0.3.1")).to_be_visible()

    dialog_a.get_by_role("button", name="Tag & Deploy 0.3.1").click()
    expect(alice).to_have_url(re.compile(r"/deployments/\d+/"))
    expect(alice.locator(".deployment-status").first).to_contain_text("Finished", timeout=15_000)

    with posted(bob, "/deploy/run") as response:
        dialog_b.get_by_role("button", name="Tag & Deploy 0.3.1").click()
    assert response.value.status == 409
    expect(dialog_b.get_by_role("alert")).to_contain_text(
        "Pre-Production or Production changed after this plan was validated. Validate it again."
    )
    # The plan is shown again as it is now: nothing left to deploy.
    expect(dialog_b).to_contain_text("Production already runs exactly Shop 0.3.1.")
    expect(dialog_b.get_by_role("button", name=re.compile("Deploy"))).to_have_count(0)
    expect(bob).not_to_have_url(re.compile(r"/deployments/"))
    screenshot(bob, "two-users-deploy-refused")

    # One deployment, one tag 0.3.1, and Production runs it.
    deployment = Deployment.objects.get()
    assert deployment.started_by.username == "alice"
    assert ApplicationTag.objects.filter(application=world.application).count() == 2
    assert content(world.cart, world.production)[1] == FIX
