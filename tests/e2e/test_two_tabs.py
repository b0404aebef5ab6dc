"""One person, two tabs of the editor on the same file: neither tab's work is ever lost.

Two browser contexts share one session (logged in once, the storage state copied), as two tabs of
one browser do, and go through edit, save and publish.
"""

import re

import pytest
from playwright.sync_api import expect

from lifecycle.models import AccessLevel, CurrentVersion, Draft
from tests.e2e.conftest import log_in, screenshot, watched
from tests.factories import make_application, make_environments, make_user, publish_files

CART = "def total(prices):\n    return sum(prices)\n"


@pytest.fixture
def tabs(browser, live_server, transactional_db):
    """Two pages of one logged-in user, and the module they edit in Development."""
    environments = make_environments()
    make_user("dev", {e: AccessLevel.DEPLOY for e in environments})
    _, (cart,) = make_application("Shop", ["Cart"])
    publish_files(cart, environments[0], {"cart.py": CART, "README.md": "# Cart\n"})
    errors = []
    first = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    tab_a = watched(first.new_page(), errors)
    log_in(tab_a, "dev", "pw-dev")
    second = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 900}, storage_state=first.storage_state()
    )
    tab_b = watched(second.new_page(), errors)
    yield tab_a, tab_b, cart, environments[0]
    first.close()
    second.close()
    assert not errors, f"browser console errors: {errors}"


def open_editor(page, module, environment, path="cart.py"):
    page.goto(f"/modules/{module.pk}/in/{environment.pk}/edit/?path={path}")
    return page.get_by_label(f"Content of {path}")


def published(module, environment):
    version = CurrentVersion.objects.get(module=module, environment=environment).version
    return version, {f.path: bytes(f.blob.data).decode() for f in version.files.select_related("blob")}


def test_a_second_tab_saving_the_same_file_is_told_and_keeps_its_text(tabs):
    tab_a, tab_b, cart, dev = tabs
    editor_a = open_editor(tab_a, cart, dev)
    editor_b = open_editor(tab_b, cart, dev)
    expect(editor_b).to_have_value(CART)

    editor_a.fill(CART + "# A: rounding\n")
    tab_a.get_by_role("button", name="Save file").click()
    expect(tab_a.get_by_text("Saved cart.py in your draft.")).to_be_visible()

    editor_b.fill(CART + "# B: discounts\n")
    tab_b.get_by_role("button", name="Save file").click()
    alert = tab_b.locator("#stale-draft")
    expect(alert).to_contain_text("cart.py was not saved.")
    expect(alert).to_contain_text("was changed in your draft after this page was loaded")
    expect(tab_b.get_by_label("Your text for cart.py (not saved)")).to_have_value(CART + "# B: discounts\n")
    # The editor shows the draft as it is now: A's work, untouched.
    expect(tab_b.get_by_label("Content of cart.py")).to_have_value(CART + "# A: rounding\n")
    expect(tab_b.get_by_role("button", name="Copy your text")).to_be_visible()
    screenshot(tab_b, "editor-two-tabs-refused-save")

    # A publishes: the new version holds A's edit under A's comment, and nothing of B's unseen text.
    tab_a.get_by_label("Comment").fill("Round the total")
    tab_a.get_by_role("button", name="Publish", exact=True).click()
    expect(tab_a.get_by_text(re.compile(r"Published Shop-Cart v2 to Development"))).to_be_visible()
    version, files = published(cart, dev)
    assert version.comment == "Round the total"
    assert files["cart.py"] == CART + "# A: rounding\n"


def test_a_tab_opened_before_a_publish_cannot_undo_it(tabs):
    tab_a, tab_b, cart, dev = tabs
    editor_a = open_editor(tab_a, cart, dev)
    editor_b = open_editor(tab_b, cart, dev)
    tab_c = tab_b.context.new_page()  # a third tab, also opened before A publishes
    open_editor(tab_c, cart, dev)

    editor_a.fill(CART + "# A: rounding\n")
    tab_a.get_by_role("button", name="Save file").click()
    tab_a.get_by_label("Comment").fill("Round the total")
    tab_a.get_by_role("button", name="Publish", exact=True).click()
    expect(tab_a.get_by_text(re.compile(r"Published Shop-Cart v2 to Development"))).to_be_visible()

    # B, opened before that publish, saves: refused, no new draft quietly started from v2.
    editor_b.fill(CART + "# B: discounts\n")
    tab_b.get_by_role("button", name="Save file").click()
    alert = tab_b.locator("#stale-draft")
    expect(alert).to_contain_text("was published or discarded after this page was loaded")
    expect(alert).to_contain_text("Shop-Cart v2 is current there now")
    expect(tab_b.get_by_label("Your text for cart.py (not saved)")).to_have_value(CART + "# B: discounts\n")
    screenshot(tab_b, "editor-two-tabs-draft-gone")
    assert not Draft.objects.exists()

    # A publish from a page opened before A's is refused too, its comment kept, and v2 stays current.
    tab_c.get_by_label("Comment").fill("C's comment")
    tab_c.get_by_role("button", name="Publish", exact=True).click()
    expect(tab_c.locator("#stale-draft")).to_contain_text("Nothing was published.")
    version, files = published(cart, dev)
    assert version.number == 2 and files["cart.py"] == CART + "# A: rounding\n"

    # Opening the editor again starts from v2, with A's change in it.
    tab_b.get_by_role("link", name="open the editor again").click()
    expect(tab_b.get_by_text("Your draft starts from v2")).to_be_visible()
    tab_b.get_by_role("link", name="cart.py", exact=True).click()
    expect(tab_b.get_by_label("Content of cart.py")).to_have_value(CART + "# A: rounding\n")
