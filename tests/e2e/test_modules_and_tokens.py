import re
import zipfile

from playwright.sync_api import expect

from lifecycle.models import AccessLevel, ApiToken, ModuleVersion
from lifecycle.tokens import authenticate
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, make_user, released_application
from tests.zips import make_zip


def test_it_browses_uploads_and_downloads_a_module(page, transactional_db, tmp_path):
    environments = make_environments()
    make_user("dev", {e: AccessLevel.DEPLOY for e in environments})
    _, (core,), _ = released_application("Shop", environments, module_names=("Core",))
    log_in(page, "dev", "pw-dev")
    page.get_by_role("link", name="Shop", exact=True).click()
    page.locator('tr[data-module="Shop-Core"] td').first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("Shop-Core"))).to_contain_text("Development")

    archive = tmp_path / "core.zip"
    archive.write_bytes(make_zip({"main.py": "print('v2')\n", "assets/logo.png": bytes(range(256))}))
    page.get_by_label("Module zip").set_input_files(str(archive))
    page.get_by_label("Comment").fill("From a zip")
    page.get_by_role("button", name="Publish zip").click()
    expect(page.get_by_text("Published Shop-Core v2 to Development.")).to_be_visible()

    # Files open in place (htmx) and the address keeps a link to them.
    page.get_by_role("link", name="main.py").click()
    expect(page.locator("#file")).to_contain_text("print('v2')")
    expect(page).to_have_url(re.compile(r"path=main.py"))
    page.get_by_role("link", name="logo.png").click()
    expect(page.locator("#file")).to_contain_text("Binary file")
    screenshot(page, "module-page")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download v2 (zip)").click()
    downloaded = zipfile.ZipFile(download_info.value.path())
    assert downloaded.read("assets/logo.png") == bytes(range(256))

    # A hostile zip is refused with a message, and nothing is published.
    archive.write_bytes(make_zip({"../escape.py": "x"}))
    page.get_by_label("Module zip").set_input_files(str(archive))
    page.get_by_role("button", name="Publish zip").click()
    expect(page.get_by_role("alert")).to_contain_text("leaves the module")
    assert ModuleVersion.objects.filter(module=core).count() == 2


def test_it_creates_and_revokes_an_api_token(page, transactional_db):
    environments = make_environments()
    make_user("dev", {e: AccessLevel.DEPLOY for e in environments})
    log_in(page, "dev", "pw-dev")
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("CI pipeline")
    page.get_by_role("button", name="Create token").click()
    raw = page.get_by_label("New API token").input_value()
    assert authenticate(raw).username == "dev"
    screenshot(page, "tokens")

    page.reload()
    expect(page.get_by_label("New API token")).to_have_count(0)
    page.get_by_role("button", name="Revoke CI pipeline").click()
    expect(page.locator("tr.revoked")).to_contain_text("Revoked")
    assert authenticate(raw) is None
    assert ApiToken.objects.get().revoked_at is not None
