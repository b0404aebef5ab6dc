"""The merge page: choosing a source's changes, resolving conflicts, publishing the result into the target."""

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from hotfixes.merging import prepare
from hotfixes.models import Hotfix, Merge, MergeItem
from hotfixes.propagation import statuses
from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import CurrentVersion, ModuleChange, ModuleVersion
from lifecycle.tagging import tag_environment
from tests.factories import make_application, publish_files

pytestmark = pytest.mark.django_db
MERGE = reverse("hotfixes:merge")
BASE = "".join(f"line {n}\n" for n in range(1, 13))


# ---------------------------------------------------------------------------
# Helpers (also used by test_propagation and test_solve)


def edit(text, replacements):
    """`text` with line n (1-based) replaced by replacements[n]."""
    lines = text.splitlines(keepends=True)
    for number, new in replacements.items():
        lines[number - 1] = new + "\n"
    return "".join(lines)


def released(environments, modules=None, name="eCommerce"):
    """An application whose modules run the same version, tagged 0.3, in every environment."""
    modules = modules or {"Cart": {"cart.py": BASE}}
    application, made = make_application(name, tuple(modules))
    for module, files in zip(made, modules.values(), strict=True):
        publish_files(module, environments[0], files)
    tag = tag_environment(application, environments[0], "0.3")
    for environment in environments[1:]:
        deploy_tag(tag, environment)
    return application, made


def current(module, environment):
    return (
        CurrentVersion.objects.select_related("version").get(module=module, environment=environment).version
    )


def files_of(module, environment):
    version = current(module, environment)
    return {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}


def text_of(module, environment, path="cart.py"):
    return files_of(module, environment)[path].decode()


class _FormReader(HTMLParser):
    """The fields a browser submits from the page's first form matching `wanted(attrs)`."""

    def __init__(self, wanted):
        super().__init__(convert_charrefs=True)
        self.wanted, self.fields = wanted, []
        self.inside = self.done = False
        self.textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and not self.done and self.wanted(attrs):
            self.inside = True
        if not self.inside:
            return
        if tag == "input":
            kind = attrs.get("type", "text")
            if kind in ("submit", "button") or not attrs.get("name"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.fields.append((attrs["name"], attrs.get("value") or "on"))
                return
            self.fields.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "textarea" and attrs.get("name"):
            self.textarea = [attrs["name"], ""]

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self.textarea is not None:
            # As a browser does: the newline right after <textarea> is not part of the value.
            name, value = self.textarea
            self.fields.append((name, value[1:] if value.startswith("\n") else value))
            self.textarea = None
        elif tag == "form" and self.inside:
            self.inside, self.done = False, True


def form_fields(html, wanted):
    """{name: value} (a list for a repeated name) as a browser would submit the form."""
    reader = _FormReader(wanted)
    reader.feed(html)
    assert reader.done, "form not found"
    data = {}
    for name, value in reader.fields:
        if name in data:
            data[name] = (data[name] if isinstance(data[name], list) else [data[name]]) + [value]
        else:
            data[name] = value
    return data


def merge_page(client, application, source, target):
    return client.get(MERGE, {"application": application.pk, "source": source.pk, "target": target.pk})


def merge_form(client, application, source, target):
    """The merge form as the page offers it: every source change ticked, no conflict resolved."""
    response = merge_page(client, application, source, target)
    assert response.status_code == 200
    return form_fields(response.content.decode(), lambda attrs: "merge-form" in attrs.get("class", ""))


def region_of(prepared, module, path, kind, line):
    """(m, f, r): the form positions of the region of `kind` whose source or target holds `line`."""
    (merge,) = [merge for merge in prepared.modules if merge.module == module]
    for f, file in enumerate(merge.files):
        if file.path != path:
            continue
        for region in file.regions:
            if region.kind == kind and (line in region.source or line in region.target):
                return module.pk, f, region.index
    raise AssertionError(f"no {kind} region with {line!r} in {path}")


def file_index(prepared, module, path):
    (merge,) = [merge for merge in prepared.modules if merge.module == module]
    return [file.path for file in merge.files].index(path)


def nothing_written(before):
    return (Merge.objects.count(), MergeItem.objects.count(), ModuleVersion.objects.count()) == before


def counts():
    return Merge.objects.count(), MergeItem.objects.count(), ModuleVersion.objects.count()


# ---------------------------------------------------------------------------
# The page


@pytest.fixture
def two_fixes(environments, release_manager):
    """Pre-Production changed lines 2 and 10 of cart.py: two separate hunks."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    fix = publish_files(
        cart, pre, {"cart.py": edit(BASE, {2: "fixed 2", 10: "fixed 10"})}, user=release_manager
    )
    return application, cart, fix


def test_it_shows_every_source_change_ticked_and_the_merged_result(
    client, release_manager, environments, two_fixes
):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    response = merge_page(client, application, pre, qa)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Merge eCommerce from Pre-Production into Quality Assurance" in html
    assert 'data-module="eCommerce-Cart"' in html and 'data-path="cart.py"' in html
    assert f'name="take-module-{cart.pk}" checked' in html
    boxes = re.findall(
        r'<input type="checkbox" name="take-hunk-[\d-]+"( checked)?> Take this change from Pre-Production',
        html,
    )
    assert boxes == [" checked", " checked"]
    preview = html.split('class="merged-preview"', 1)[1]
    assert "Merged result: what changes in Quality Assurance" in preview
    assert "+fixed 2" in preview and "+fixed 10" in preview and "-line 2" in preview
    assert 'name="action" value="merge"' in html
    assert "merging does not open a new hotfix in Quality Assurance" in html


def test_it_refuses_an_outsider_and_an_unknown_application(
    client, outsider, release_manager, environments, two_fixes
):
    application, _, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(outsider)
    assert merge_page(client, application, pre, qa).status_code == 404
    client.force_login(release_manager)
    response = client.get(MERGE, {"application": 999999, "source": pre.pk, "target": qa.pk})
    assert response.status_code == 404


def test_it_refuses_to_merge_an_environment_into_itself(client, release_manager, environments, two_fixes):
    application, _, _ = two_fixes
    client.force_login(release_manager)
    response = merge_page(client, application, environments[2], environments[2])
    assert response.status_code == 400
    assert "Pre-Production cannot be merged into itself" in response.content.decode()


@pytest.mark.parametrize(
    ("source", "target"),
    [(0, 3), (0, 1), (2, 3)],
    ids=["development-into-production", "development-into-qa", "pre-production-into-production"],
)
def test_it_refuses_a_merge_forward_whoever_asks(client, release_manager, environments, source, target):
    """Even with every access, a merge forward answers 400 and changes nothing: forward is Tag & Deploy."""
    application, (cart,) = released(environments)
    source, target = environments[source], environments[target]
    publish_files(cart, source, {"cart.py": edit(BASE, {2: "unreleased work"})}, user=release_manager)
    hotfixes = list(Hotfix.objects.all())
    target_before = current(cart, target)
    client.force_login(release_manager)

    page = merge_page(client, application, source, target)
    html = page.content.decode()
    assert page.status_code == 400
    assert f"Merging goes backward only: {source.name} comes before {target.name}" in html
    assert 'class="merge-form"' not in html
    back = f"{MERGE}?application={application.pk}&amp;source={target.pk}&amp;target={source.pk}"
    assert f'href="{back}">Merge {target.name} into {source.name}</a>' in html
    before = counts()
    data = {
        "application": application.pk,
        "source": source.pk,
        "target": target.pk,
        "fingerprint": "0" * 64,
        "action": "merge",
    }
    response = client.post(MERGE, data)

    assert response.status_code == 400
    assert nothing_written(before) and current(cart, target) == target_before
    assert list(Hotfix.objects.all()) == hotfixes


def test_it_says_when_there_is_nothing_to_merge(client, release_manager, environments):
    application, _ = released(environments)
    client.force_login(release_manager)
    html = merge_page(client, application, environments[2], environments[1]).content.decode()
    assert "Quality Assurance already contains every change of Pre-Production: nothing to merge." in html
    assert 'class="merge-form"' not in html


def test_it_merges_every_change_by_default_and_records_the_merge(
    client, release_manager, environments, two_fixes
):
    application, cart, fix = two_fixes
    dev, qa, pre, prod = environments
    hotfix = Hotfix.objects.get()
    qa_before = current(cart, qa)
    taken = list(prepare(application, pre, qa).modules[0].files[0].source_changes)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    assert response.url == reverse("lifecycle:application", args=[application.pk])
    result = current(cart, qa)
    assert result.parent == qa_before and result.merged_from == fix and result.merged_all
    assert text_of(cart, qa) == edit(BASE, {2: "fixed 2", 10: "fixed 10"})
    change = ModuleChange.objects.filter(environment=qa, module=cart).first()  # newest first
    assert (change.kind, change.version, change.previous_version, change.user) == (
        ModuleChange.Kind.MERGE,
        result,
        qa_before,
        release_manager,
    )
    assert list(Hotfix.objects.all()) == [hotfix]  # no hotfix opened in Quality Assurance
    merge = Merge.objects.get()
    assert (merge.source, merge.target, merge.application, merge.hotfix, merge.user) == (
        pre,
        qa,
        application,
        hotfix,
        release_manager,
    )
    item = merge.items.get()
    assert (item.module, item.base_version, item.target_version, item.source_version) == (
        cart,
        qa_before,
        qa_before,
        fix,
    )
    assert item.result_version == result and item.complete
    assert item.selection == {"skipped": [], "regions": {"cart.py": taken}, "resolved": {}, "choices": {}}
    (rows,) = statuses([hotfix], environments).values()
    assert {row.environment.name: row.state for row in rows}["Quality Assurance"] == "all"
    page = client.get(response.url).content.decode()
    assert "Merged eCommerce-Cart from Pre-Production into Quality Assurance." in page


def test_it_keeps_both_sides_changes_in_a_three_way_merge(client, release_manager, environments):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    mine = publish_files(cart, dev, {"cart.py": edit(BASE, {2: "development 2"})}, user=release_manager)
    fix = publish_files(cart, pre, {"cart.py": edit(BASE, {10: "fixed 10"})}, user=release_manager)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    html = merge_page(client, application, pre, dev).content.decode()
    assert "Kept from Development" in html and "development 2" in html

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    assert text_of(cart, dev) == edit(BASE, {2: "development 2", 10: "fixed 10"})
    result = current(cart, dev)
    assert (result.parent, result.merged_from, result.merged_all) == (mine, fix, True)
    assert MergeItem.objects.get().base_version.number == 1


def test_it_previews_a_selection_without_writing(client, release_manager, environments, two_fixes):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    m, f, r = region_of(prepare(application, pre, qa), cart, "cart.py", "source", "fixed 10\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    del data[f"take-hunk-{m}-{f}-{r}"]
    before = counts()

    response = client.post(MERGE, {**data, "action": "preview"})

    html = response.content.decode()
    assert response.status_code == 200
    preview = html.split('class="merged-preview"', 1)[1]
    assert "+fixed 2" in preview and "+fixed 10" not in preview
    assert f'name="take-hunk-{m}-{f}-{r}">' in html  # stays unticked
    assert nothing_written(before)


def test_it_takes_only_the_ticked_hunks(client, release_manager, environments, two_fixes):
    application, cart, fix = two_fixes
    dev, qa, pre, prod = environments
    hotfix = Hotfix.objects.get()
    m, f, r = region_of(prepare(application, pre, qa), cart, "cart.py", "source", "fixed 10\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    del data[f"take-hunk-{m}-{f}-{r}"]

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    assert text_of(cart, qa) == edit(BASE, {2: "fixed 2"})
    item = MergeItem.objects.get()
    assert not item.complete and r not in item.selection["regions"]["cart.py"]
    result = current(cart, qa)
    assert result.merged_from == fix and not result.merged_all
    (rows,) = statuses([hotfix], environments).values()
    qa_status = {row.environment.name: row for row in rows}["Quality Assurance"]
    # Some of the hotfix is there: the status says so, and what is lacking, by file and hunk.
    assert qa_status.state == "some" and qa_status.missing == []
    assert qa_status.lacks == ["eCommerce-Cart: cart.py line 10"]

    # The change left out is offered again; the one taken is now on both sides.
    again = prepare(application, pre, qa)
    (file,) = again.modules[0].files
    assert [file.regions[i].source for i in file.source_changes] == [("fixed 10\n",)]
    assert any(region.kind == "same" and region.source == ("fixed 2\n",) for region in file.regions)
    html = merge_page(client, application, pre, qa).content.decode()
    assert html.count("Take this change from Pre-Production") == 1


def test_it_leaves_out_an_unticked_file(client, release_manager, environments):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments, {"Cart": {"cart.py": BASE, "tax.py": "rate = 1\n"}})
    publish_files(
        cart, pre, {"cart.py": edit(BASE, {2: "fixed 2"}), "tax.py": "rate = 2\n"}, user=release_manager
    )
    f = file_index(prepare(application, pre, qa), cart, "tax.py")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    assert data[f"take-file-{cart.pk}-{f}"] == "on"
    del data[f"take-file-{cart.pk}-{f}"]

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    assert files_of(cart, qa) == {"cart.py": edit(BASE, {2: "fixed 2"}).encode(), "tax.py": b"rate = 1\n"}
    item = MergeItem.objects.get()
    assert not item.complete and item.selection["skipped"] == ["tax.py"]
    assert not current(cart, qa).merged_all


def test_it_leaves_out_an_unticked_module(client, release_manager, environments):
    dev, qa, pre, prod = environments
    application, (cart, pay) = released(environments, {"Cart": {"cart.py": BASE}, "Pay": {"pay.py": BASE}})
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed 2"})}, user=release_manager)
    publish_files(pay, pre, {"pay.py": edit(BASE, {3: "fixed 3"})}, user=release_manager)
    hotfix = Hotfix.objects.get()
    pay_before = current(pay, qa)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    del data[f"take-module-{pay.pk}"]

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    assert [item.module for item in MergeItem.objects.all()] == [cart]
    assert MergeItem.objects.get().complete
    assert current(pay, qa) == pay_before
    assert text_of(cart, qa) == edit(BASE, {2: "fixed 2"})
    (rows,) = statuses([hotfix], environments).values()
    qa_status = {row.environment.name: row for row in rows}["Quality Assurance"]
    assert (qa_status.state, qa_status.contained, qa_status.missing) == (
        "some",
        ["eCommerce-Cart"],
        ["eCommerce-Pay"],
    )


def test_it_refuses_a_merge_with_nothing_selected(client, release_manager, environments, two_fixes):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    del data[f"take-module-{cart.pk}"]
    before = counts()

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 422
    assert "No changes were selected; nothing was merged." in response.content.decode()
    assert nothing_written(before)


# ---------------------------------------------------------------------------
# Conflicts


@pytest.fixture
def conflicting(environments, release_manager):
    """Development and Pre-Production changed line 5 differently."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, dev, {"cart.py": edit(BASE, {5: "development 5", 9: "development 9"})})
    publish_files(cart, pre, {"cart.py": edit(BASE, {5: "hotfix 5", 11: "hotfix 11"})}, user=release_manager)
    return application, cart


def test_it_shows_a_conflict_and_refuses_to_merge_it_unresolved(
    client, release_manager, environments, conflicting
):
    application, cart = conflicting
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    html = merge_page(client, application, pre, dev).content.decode()
    assert "Conflict: both changed these lines" in html and 'class="badge-conflict"' in html
    assert "development 5" in html and "hotfix 5" in html
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "hotfix 5\n")
    assert f'name="resolve-{m}-{f}-{r}" value="source">' in html  # offered, not chosen
    dev_before = current(cart, dev)
    before = counts()
    data = merge_form(client, application, pre, dev)

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 422
    assert "1 conflict still to resolve; nothing was merged." in response.content.decode()
    assert nothing_written(before) and current(cart, dev) == dev_before


@pytest.mark.parametrize(
    ("how", "edited", "line_5"),
    [("source", "", "hotfix 5"), ("target", "", "development 5"), ("edit", "both 5\r\nand more", None)],
)
def test_it_merges_a_resolved_conflict(
    client, release_manager, environments, conflicting, how, edited, line_5
):
    application, cart = conflicting
    dev, qa, pre, prod = environments
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "hotfix 5\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    data[f"resolve-{m}-{f}-{r}"] = how
    if edited:
        data[f"edit-{m}-{f}-{r}"] = edited

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302
    expected = edit(BASE, {5: line_5 or "both 5\nand more", 9: "development 9", 11: "hotfix 11"})
    assert text_of(cart, dev) == expected
    item = MergeItem.objects.get()
    assert item.selection["resolved"] == {"cart.py": [r]}


def test_it_offers_the_edit_prefilled_with_the_source_lines(
    client, release_manager, environments, conflicting
):
    application, cart = conflicting
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "hotfix 5\n")
    assert data[f"edit-{m}-{f}-{r}"] == "hotfix 5\n"


@pytest.fixture
def binary_conflict(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments, {"Cart": {"cart.py": BASE, "logo.png": b"\x89PNG\0base"}})
    publish_files(cart, dev, {"cart.py": BASE, "logo.png": b"\x89PNG\0development"})
    publish_files(cart, pre, {"cart.py": BASE, "logo.png": b"\x89PNG\0hotfix"}, user=release_manager)
    return application, cart


@pytest.mark.parametrize(
    ("choice", "logo"), [("source", b"\x89PNG\0hotfix"), ("target", b"\x89PNG\0development")]
)
def test_it_merges_a_binary_conflict_by_choice(
    client, release_manager, environments, binary_conflict, choice, logo
):
    application, cart = binary_conflict
    dev, qa, pre, prod = environments
    f = file_index(prepare(application, pre, dev), cart, "logo.png")
    client.force_login(release_manager)
    html = merge_page(client, application, pre, dev).content.decode()
    assert "Both changed this binary file" in html
    data = merge_form(client, application, pre, dev)
    before = counts()
    refused = client.post(MERGE, {**data, "action": "merge"})
    assert refused.status_code == 422 and nothing_written(before)

    response = client.post(MERGE, {**data, f"choice-{cart.pk}-{f}": choice, "action": "merge"})

    assert response.status_code == 302
    assert files_of(cart, dev)["logo.png"] == logo
    assert MergeItem.objects.get().selection["choices"] == {"logo.png": choice}


@pytest.fixture
def delete_conflict(environments, release_manager):
    """Development changed old.py; Pre-Production deleted it."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments, {"Cart": {"cart.py": BASE, "old.py": "old = 1\n"}})
    publish_files(cart, dev, {"cart.py": BASE, "old.py": "old = 2\n"})
    publish_files(cart, pre, {"cart.py": edit(BASE, {1: "fixed 1"})}, user=release_manager)
    return application, cart


@pytest.mark.parametrize(("choice", "old"), [("delete", None), ("keep", b"old = 2\n")])
def test_it_merges_a_delete_modify_conflict_by_choice(
    client, release_manager, environments, delete_conflict, choice, old
):
    application, cart = delete_conflict
    dev, qa, pre, prod = environments
    f = file_index(prepare(application, pre, dev), cart, "old.py")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    before = counts()
    refused = client.post(MERGE, {**data, "action": "merge"})
    assert refused.status_code == 422 and nothing_written(before)

    response = client.post(MERGE, {**data, f"choice-{cart.pk}-{f}": choice, "action": "merge"})

    assert response.status_code == 302
    files = files_of(cart, dev)
    assert files.get("old.py") == old
    assert files["cart.py"] == edit(BASE, {1: "fixed 1"}).encode()


def test_it_names_the_environment_that_deleted_the_file(
    client, release_manager, environments, delete_conflict
):
    application, _ = delete_conflict
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    html = merge_page(client, application, pre, dev).content.decode()
    assert "Deleted in Pre-Production, changed in Development" in html


# ---------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("changed_side", ["target", "source"])
def test_it_refuses_a_stale_merge_and_prepares_it_again(
    client, release_manager, environments, two_fixes, changed_side
):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    if changed_side == "target":
        publish_files(cart, qa, {"cart.py": edit(BASE, {12: "qa 12"})}, user=release_manager)
    else:
        publish_files(
            cart,
            pre,
            {"cart.py": edit(BASE, {2: "fixed 2", 10: "fixed 10", 12: "pre 12"})},
            user=release_manager,
        )
    qa_now = current(cart, qa)
    before = counts()

    response = client.post(MERGE, {**data, "action": "merge"})

    html = response.content.decode()
    assert response.status_code == 409
    assert "changed after this merge was prepared. It has been prepared again" in html
    assert nothing_written(before) and current(cart, qa) == qa_now
    fresh = form_fields(html, lambda attrs: "merge-form" in attrs.get("class", ""))
    assert fresh["fingerprint"] != data["fingerprint"]
    assert client.post(MERGE, {**fresh, "action": "merge"}).status_code == 302


def test_a_stale_choice_is_refused_as_stale_not_as_a_choice_never_offered(
    client, release_manager, environments, binary_conflict
):
    """The page offered target or source for a binary conflict; meanwhile Development deleted the
    file, so the same field now offers keep or delete. The merge is stale, and says so (409)."""
    application, cart = binary_conflict
    dev, qa, pre, prod = environments
    f = file_index(prepare(application, pre, dev), cart, "logo.png")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    publish_files(cart, dev, {"cart.py": BASE}, user=release_manager)
    before = counts()

    response = client.post(MERGE, {**data, f"choice-{cart.pk}-{f}": "source", "action": "merge"})

    assert response.status_code == 409
    assert "changed after this merge was prepared" in response.content.decode()
    assert nothing_written(before)


def test_it_refuses_a_viewer(client, viewer, release_manager, environments, two_fixes):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    client.force_login(viewer)
    html = merge_page(client, application, pre, qa).content.decode()
    assert "Merging into Quality Assurance needs publish access there." in html
    assert 'value="merge"' not in html
    before = counts()

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 403 and nothing_written(before)


def test_it_lets_a_developer_merge_production_back_but_never_into_it(
    client, developer, release_manager, environments, two_fixes
):
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(developer)
    prod_before = current(cart, prod)
    before = counts()
    response = client.post(
        MERGE,
        {
            "application": application.pk,
            "source": pre.pk,
            "target": prod.pk,
            "fingerprint": "",
            "action": "merge",
        },
    )
    assert response.status_code == 400
    assert nothing_written(before) and current(cart, prod) == prod_before
    # The same developer may merge Pre-Production back into Quality Assurance.
    assert (
        client.post(MERGE, {**merge_form(client, application, pre, qa), "action": "merge"}).status_code == 302
    )


def test_it_escapes_file_content(client, release_manager, environments):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(
        cart, pre, {"cart.py": edit(BASE, {3: "<script>alert('x')</script>"})}, user=release_manager
    )
    publish_files(cart, dev, {"cart.py": edit(BASE, {3: "<b>development</b>"})})
    client.force_login(release_manager)
    for target in (qa, dev):  # a plain source change, and a conflict with its edit box
        html = merge_page(client, application, pre, target).content.decode()
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
        assert "<script>alert" not in html and "<b>development</b>" not in html


def test_it_keeps_a_leading_blank_line_of_a_conflict_edit(client, release_manager, environments):
    """HTML drops the newline right after <textarea>: the page must add one, or a first blank line is lost."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, dev, {"cart.py": edit(BASE, {5: "development 5"})})
    publish_files(cart, pre, {"cart.py": edit(BASE, {5: "\nhotfix 5"})}, user=release_manager)
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "hotfix 5\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    assert data[f"edit-{m}-{f}-{r}"] == "\nhotfix 5\n"

    response = client.post(MERGE, {**data, f"resolve-{m}-{f}-{r}": "edit", "action": "merge"})

    assert response.status_code == 302
    assert text_of(cart, dev) == edit(BASE, {5: "\nhotfix 5"})


def test_it_answers_422_when_the_merged_result_is_refused_and_writes_nothing(
    client, release_manager, environments
):
    """README.md in one environment, readme.md in the other: merged, they cannot check out everywhere."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, qa, {"cart.py": BASE, "README.md": "QA\n"}, user=release_manager)
    publish_files(cart, pre, {"cart.py": BASE, "readme.md": "pre\n"}, user=release_manager)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    qa_before, before = current(cart, qa), counts()

    response = client.post(MERGE, {**data, "action": "merge"})

    html = response.content.decode()
    assert response.status_code == 422
    assert "The merged eCommerce-Cart cannot be published into Quality Assurance" in html
    assert "readme.md" in html.lower() and 'class="merge-form"' in html
    assert nothing_written(before) and current(cart, qa) == qa_before


def test_it_answers_422_for_a_choice_the_page_never_offers(
    client, release_manager, environments, conflicting
):
    application, cart = conflicting
    dev, qa, pre, prod = environments
    m, f, r = region_of(prepare(application, pre, dev), cart, "cart.py", "conflict", "hotfix 5\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, dev)
    before = counts()

    response = client.post(MERGE, {**data, f"resolve-{m}-{f}-{r}": "both", "action": "merge"})

    assert response.status_code == 422
    assert "a choice the page does not offer; nothing was merged" in response.content.decode()
    assert nothing_written(before)


def test_the_merge_page_is_never_cached(client, release_manager, environments, two_fixes):
    application, _, _ = two_fixes
    dev, qa, pre, prod = environments
    client.force_login(release_manager)
    response = merge_page(client, application, pre, qa)
    assert "no-store" in response["Cache-Control"]


@pytest.fixture
def partly_merged(client, release_manager, environments, two_fixes):
    """Only the change to line 2 of the hotfix was merged into Quality Assurance, through the page."""
    application, cart, _ = two_fixes
    dev, qa, pre, prod = environments
    m, f, r = region_of(prepare(application, pre, qa), cart, "cart.py", "source", "fixed 10\n")
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    del data[f"take-hunk-{m}-{f}-{r}"]
    assert client.post(MERGE, {**data, "action": "merge"}).status_code == 302
    return application, cart, Hotfix.objects.get()


def test_the_application_page_shows_a_partial_merge_as_some_and_what_it_lacks(
    client, environments, partly_merged
):
    application, cart, hotfix = partly_merged
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    status = html.split('data-environment="Quality Assurance"', 1)[1].split("</li>", 1)[0]
    assert 'class="propagation-some"' in html.split('data-environment="Quality Assurance"', 1)[0][-40:]
    assert "contains some changes" in status and "(lacks eCommerce-Cart: cart.py line 10)" in status
    assert "contains none" not in status
    # Recent changes mark the merge as partial.
    changes = html.split('id="changes-heading"', 1)[1].split("</table>", 1)[0]
    row = next(row for row in changes.split("<tr>") if "Merge" in row)
    assert 'class="partial-label"' in row and "Quality Assurance" in row


def test_the_module_history_and_the_timeline_mark_a_partial_merge(client, environments, partly_merged):
    application, cart, hotfix = partly_merged
    dev, qa, pre, prod = environments
    result = current(cart, qa)
    html = client.get(reverse("lifecycle:module", args=[cart.pk, qa.pk])).content.decode()
    row = html.split(f'<tr data-version="{result.number}">', 1)[1].split("</tr>", 1)[0]
    assert "+ merged" in row and 'class="partial-label"' in row
    full = html.split('<tr data-version="1">', 1)[1].split("</tr>", 1)[0]
    assert "partial" not in full
    page = client.get(reverse("hotfixes:hotfix", args=[hotfix.pk])).content.decode()
    assert "Partly merged into Quality Assurance: some changes were left out" in page
    assert "(lacks eCommerce-Cart: cart.py line 10)" in page


def test_the_merge_and_propagate_pages_read_a_fixed_number_of_queries_whatever_the_files(
    client, release_manager, environments, django_assert_max_num_queries
):
    """Merging reads the whole target module (the result is whole), in one query, not one per file."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    dev, qa, pre, prod = environments

    def hotfixed(name, count):
        files = {"cart.py": BASE, **{f"lib/f{n}.py": f"n = {n}\n" for n in range(count)}}
        application, (cart,) = released(environments, {"Cart": files}, name=name)
        publish_files(cart, pre, {**files, "cart.py": edit(BASE, {2: "fixed 2"})}, user=release_manager)
        return application, Hotfix.objects.get(application=application)

    small, small_hotfix = hotfixed("Small", 2)
    large, large_hotfix = hotfixed("Large", 40)
    client.force_login(release_manager)
    for url_of in (
        lambda app, hotfix: f"{MERGE}?application={app.pk}&source={pre.pk}&target={qa.pk}",
        lambda app, hotfix: reverse("hotfixes:propagate", args=[hotfix.pk]),
    ):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url_of(small, small_hotfix)).status_code == 200
        with django_assert_max_num_queries(len(queries)):
            assert client.get(url_of(large, large_hotfix)).status_code == 200


def test_a_hotfix_of_many_files_can_be_merged_from_the_page(client, release_manager, environments):
    """A checkbox per file and per hunk: a hotfix of 1,100 files sends more than Django's default
    1,000 fields, which answered a bare 400 and left the hotfix impossible to merge in the browser."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    hotfix = {"cart.py": BASE, **{f"generated/f{n:04}.py": f"n = {n}\n" for n in range(1100)}}
    publish_files(cart, pre, hotfix, user=release_manager)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)
    assert sum(len(v) if isinstance(v, list) else 1 for v in data.values()) > 1000

    response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302, response.content[:300]
    assert files_of(cart, qa).keys() == hotfix.keys()
