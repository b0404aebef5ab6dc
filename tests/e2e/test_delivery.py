"""In the browser, with a real agent: Tag & Deploy reaches the machine (delivered), and a file edited
there shows as drift on the grid and is adopted as a hotfix from the drift page.

The agent runs as an operator runs it, `python agent/stageboard_agent.py --once`, in a subprocess
against the live server, writing under a temporary directory. Each pass is run by the test, when
the story needs it, so nothing depends on timing.
"""

import re
import subprocess
import sys

from django.contrib.auth.models import User
from playwright.sync_api import expect

from hotfixes.models import Hotfix
from lifecycle.delivery import agent_tokens
from lifecycle.models import Delivery, Drift
from tests.agent.agent_double import AGENT_PATH
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, publish_files, released_application

EDITED = "# Shop-Core\nprint('newer')\nprint('fixed on the server at night')\n"


def run_agent(server, token_file, root):
    done = subprocess.run(
        [sys.executable, str(AGENT_PATH), "--server", server, "--token-file", str(token_file)]
        # A long interval: the agent stays "online" for 3 of them whatever the pace of the test.
        + ["--root", str(root), "--interval", "60", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_deploy_is_delivered_and_a_drift_is_adopted_as_a_hotfix(
    page, live_server, transactional_db, tmp_path
):
    environments = make_environments()
    application, (core, web), _ = released_application("Shop", environments, module_names=("Core", "Web"))
    dev, qa = environments[0], environments[1]
    for module in (core, web):
        publish_files(module, dev, {"main.py": f"# {module.name}\nprint('newer')\n"})
    qa.delivery = Delivery.AGENT
    qa.save(update_fields=["delivery"])
    token_file = tmp_path / "token"
    token_file.write_text(agent_tokens.create(qa, "web-1")[1] + "\n")
    root = tmp_path / "machine"
    User.objects.create_superuser("admin", password="demo-password")
    log_in(page, "admin", "demo-password")

    # No agent has polled yet: Quality Assurance's column says so.
    head = page.locator("th.env-head", has_text="Quality Assurance")
    expect(head).to_contain_text("agent offline")
    expect(head).to_contain_text("never seen")

    # Tag & Deploy from the grid: switched in Stageboard, then waiting for the machine.
    row = page.locator('tr[data-application="Shop"]')
    row.get_by_role("link", name="Deploy Shop from Development to Quality Assurance").click()
    dialog = page.locator("dialog#dialog")
    dialog.get_by_role("button", name="Tag & Deploy 0.4").click()
    expect(page).to_have_url(re.compile(r"/deployments/\d+/"))
    expect(page.get_by_text("Waiting for Quality Assurance").first).to_be_visible()

    log = run_agent(live_server.url, token_file, root)
    assert "downloaded Shop-Core" in log
    expect(page.get_by_text("Finished", exact=True).first).to_be_visible(timeout=15_000)

    page.get_by_role("link", name="Pipeline").first.click()
    cell = page.locator('tr[data-application="Shop"] td[data-environment="Quality Assurance"]')
    expect(cell.locator(".version")).to_have_text("0.4")
    expect(cell.locator(".live")).to_have_text(re.compile(r"✓\s+delivered"))
    # The grid shows the state; the time of the report is on the application page.
    title = "Shop in Quality Assurance: delivered, 0.4 applied"
    expect(cell.locator(".live")).to_have_attribute("title", title)
    expect(head).to_contain_text("agent online")
    # Record environments show no live state.
    expect(page.locator('td[data-environment="Development"] .live')).to_have_count(0)
    screenshot(page, "delivery-grid-delivered")

    # Someone fixes a file on the server. The agent's next pass finds it and uploads the module.
    (root / "Shop" / "current" / "Shop-Core" / "main.py").write_text(EDITED)
    run_agent(live_server.url, token_file, root)
    page.reload()
    expect(cell.locator(".live")).to_have_text(re.compile(r"≠\s+drift"))

    # At 768 px the grid scrolls in its own box; the page itself does not.
    page.set_viewport_size({"width": 768, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    cell.scroll_into_view_if_needed()
    expect(cell.locator(".live")).to_be_visible()
    screenshot(page, "delivery-grid-drift-768")
    page.set_viewport_size({"width": 1400, "height": 900})

    cell.get_by_role("link", name="drift of Shop in Quality Assurance: review it").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Drift of Shop-Core in Quality Assurance")
    diff = page.locator('section.diff-file[data-path="main.py"]')
    expect(diff.locator(".diff-add")).to_have_text("+print('fixed on the server at night')")
    screenshot(page, "delivery-drift-page")

    page.get_by_label("Comment").fill("Night fix on web-1")
    page.get_by_role("button", name="Adopt as hotfix").click()
    expect(
        page.get_by_text("Adopted the files found on Quality Assurance's machines as Shop-Core v3")
    ).to_be_visible()
    expect(page.get_by_role("link", name="the hotfix")).to_be_visible()
    expect(page.get_by_role("button", name="Adopt as hotfix")).to_have_count(0)
    drift = Drift.objects.get()
    assert (
        drift.resolution == Drift.Resolution.ADOPTED and drift.adopted_version.comment == "Night fix on web-1"
    )
    assert Hotfix.objects.open().get().environment == qa

    # The agent takes the adopted version, whose files are those already on the machine.
    run_agent(live_server.url, token_file, root)
    page.get_by_role("link", name="Pipeline").first.click()
    expect(cell).to_have_class(re.compile(r"\bhotfix\b"))
    expect(cell.locator(".hotfix-label")).to_have_text("hotfix")
    expect(cell.locator(".live")).to_have_text(re.compile(r"✓\s+delivered"))
    screenshot(page, "delivery-grid-adopted")

    # The application page says the same in Quality Assurance's column.
    page.get_by_role("link", name="Shop", exact=True).click()
    column = page.locator("table.modules thead th", has_text="Quality Assurance")
    expect(column.locator(".live")).to_have_text(re.compile(r"✓\s+delivered"))
    expect(column).to_contain_text("agent online")
    expect(column.locator(".live-time").first).to_contain_text("reported")
    expect(column.locator(".live")).to_have_attribute(
        "title",
        re.compile(r"delivered, 0\.4\+ applied, last report "),  # The adopted drift: 0.4+.
    )
    screenshot(page, "delivery-application-page")
