"""Browser tests: Playwright driving the system's Chromium against pytest-django's live server."""

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags this sandbox needs: no setuid sandbox, no GPU, and no calls home over a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Refused forms answer 409 or 422 on purpose; Chromium logs those responses as console errors.
EXPECTED_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        message = "Chromium is not installed: apt-get install chromium"
        if os.environ.get("STAGEBOARD_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the live server's
    # database work happens in its own thread, and the test's setup is plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    errors = []
    page = watched(context.new_page(), errors)
    yield page
    context.close()
    # A CSP violation or a script error is a failure, even when the page looked right.
    assert not errors, f"browser console errors: {errors}"


def watched(page, errors):
    """Collect the page's script errors and CSP violations into `errors`; refused forms (409, 422)
    are expected. Every browser test asserts `errors` is empty at its end."""
    page.set_default_timeout(10_000)
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not EXPECTED_ERROR.search(message.text)
            and errors.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, caret="initial")
    return path


def log_in(page, username, password):
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
