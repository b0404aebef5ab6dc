"""Diffs read single-spaced in a real browser: the version diff page and the merge preview.

Issue 9, item 28.
"""

from django.urls import reverse
from playwright.sync_api import expect

from lifecycle.models import AccessLevel
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, make_user, publish_files, released_application

BEFORE = "".join(f"line {n}\n" for n in range(1, 9))
AFTER = BEFORE.replace("line 4\n", "line four\n") + "line 9\n"

# The top of every line of a diff, in order, as the browser lays it out.
LINE_TOPS = "s => Array.from(document.querySelectorAll(s), e => e.getBoundingClientRect().top)"


def _steps(tops):
    return [round(b - a, 1) for a, b in zip(tops, tops[1:], strict=False)]


def _assert_single_spaced(tops, count):
    assert len(tops) == count
    steps = _steps(tops)
    # One line height between any two neighbouring lines: an empty line would make a double step.
    assert min(steps) > 0 and max(steps) < 1.5 * min(steps), steps


def test_the_version_diff_page_is_single_spaced(page, transactional_db):
    environments = make_environments()
    make_user("viewer", {e: AccessLevel.VIEW for e in environments})
    _, (core,), _ = released_application("Shop", environments, module_names=("Core",))
    publish_files(core, environments[0], {"main.py": BEFORE})  # v2
    publish_files(core, environments[0], {"main.py": AFTER})  # v3
    log_in(page, "viewer", "pw-viewer")
    page.goto(reverse("hotfixes:diff", args=[core.pk, 2, 3]))
    expect(page.locator("pre.diff")).to_contain_text("line four")
    screenshot(page, "version-diff")
    tops = page.evaluate(LINE_TOPS, "pre.diff > span")
    # A hunk header, then 8 old lines with line 4 replaced and line 9 added: 1 + 10 spans.
    _assert_single_spaced(tops, 11)
    # Nor an empty line after the last one.
    height = page.evaluate("document.querySelector('pre.diff').getBoundingClientRect().bottom")
    assert height - tops[-1] < 1.5 * min(_steps(tops))


def test_the_merge_preview_is_single_spaced(page, transactional_db):
    environments = make_environments()
    make_user("rm", {e: AccessLevel.FULL for e in environments})
    application, (core,), _ = released_application("Shop", environments, module_names=("Core",))
    publish_files(core, environments[0], {"main.py": BEFORE})
    publish_files(core, environments[2], {"main.py": AFTER})  # a hotfix in Pre-Production
    log_in(page, "rm", "pw-rm")
    query = f"?application={application.pk}&source={environments[2].pk}&target={environments[1].pk}"
    page.goto(reverse("hotfixes:merge") + query)
    preview = page.locator(".merged-preview table.diff-table").first
    expect(preview).to_be_visible()
    screenshot(page, "merge-preview")
    tops = page.evaluate(LINE_TOPS, ".merged-preview table.diff-table tr")
    _assert_single_spaced(tops, len(tops))
