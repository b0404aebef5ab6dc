"""The merge domain: which way a merge goes, criss-cross histories, content refused, partial merges."""

import pytest
from django.core.exceptions import PermissionDenied

from hotfixes.forms import MergeSelectionForm
from hotfixes.merging import MergeDirectionError, MergeError, perform, prepare
from hotfixes.models import Hotfix, Merge
from hotfixes.propagation import mark_solved, statuses
from hotfixes.timeline import timeline
from lifecycle.models import ModuleVersion
from tests.factories import publish_files
from tests.hotfixes.test_merge_views import (
    BASE,
    counts,
    current,
    edit,
    files_of,
    region_of,
    released,
    text_of,
)

pytestmark = pytest.mark.django_db


def merge(application, source, target, user, selections=None):
    prepared = prepare(application, source, target)
    return perform(prepared, selections, user=user, fingerprint=prepared.fingerprint)


# Item 3: merging goes backward only.


@pytest.mark.parametrize(("source", "target"), [(0, 3), (0, 1), (2, 3), (1, 2)])
def test_prepare_refuses_a_merge_forward(environments, release_manager, source, target):
    application, (cart,) = released(environments)
    publish_files(cart, environments[source], {"cart.py": edit(BASE, {2: "newer"})}, user=release_manager)

    with pytest.raises(MergeDirectionError, match="Merging goes backward only") as refused:
        prepare(application, environments[source], environments[target])

    assert f"{environments[source].name} comes before {environments[target].name}" in str(refused.value)
    assert "Tag & Deploy" in str(refused.value)


def test_prepare_refuses_a_merge_into_the_same_environment(environments, release_manager):
    application, _ = released(environments)
    with pytest.raises(MergeDirectionError, match="cannot be merged into itself"):
        prepare(application, environments[1], environments[1])


def test_perform_refuses_a_merge_forward_even_when_prepared_by_hand(environments, release_manager):
    """A prepared merge pointed at a later environment (as a caller could build one) writes nothing.

    Quality Assurance and Production run the same version, so the merge prepared for Quality
    Assurance would apply to Production as it is: Pre-Production's hotfix in Production with no
    tag, no deployment and no deploy access, which is what the rule forbids.
    """
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed"})}, user=release_manager)
    prepared = prepare(application, pre, qa)
    prepared.target = prod
    before = counts()

    with pytest.raises(MergeDirectionError, match="Pre-Production comes before Production"):
        perform(prepared, None, user=release_manager, fingerprint=prepared.fingerprint)

    assert counts() == before
    assert text_of(cart, prod) == BASE


def test_a_backward_merge_is_allowed_from_any_later_environment(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, prod, {"cart.py": edit(BASE, {2: "fixed in production"})}, user=release_manager)

    merge(application, prod, dev, release_manager)

    assert text_of(cart, dev) == edit(BASE, {2: "fixed in production"})


# Item 16: criss-cross histories.


@pytest.fixture
def criss_cross(environments, release_manager):
    """Two hotfixes merged back both ways, so Development and Quality Assurance have two merge bases.

    Pre-Production fixed line 2 (P1) and Quality Assurance line 10 (Q1). Development took Q1,
    then P1; Quality Assurance took P1. Then each side reverted the other's change: Development
    line 2, Quality Assurance line 10. The merge bases of the two are P1 and Q1, equally near.
    """
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    p1 = publish_files(cart, pre, {"cart.py": edit(BASE, {2: "pre 2"})}, user=release_manager)
    q1 = publish_files(cart, qa, {"cart.py": edit(BASE, {10: "qa 10"})}, user=release_manager)
    merge(application, qa, dev, release_manager)
    merge(application, pre, dev, release_manager)
    merge(application, pre, qa, release_manager)
    assert text_of(cart, dev) == text_of(cart, qa) == edit(BASE, {2: "pre 2", 10: "qa 10"})
    publish_files(cart, dev, {"cart.py": edit(BASE, {10: "qa 10"})}, user=release_manager)
    publish_files(cart, qa, {"cart.py": edit(BASE, {2: "pre 2"})}, user=release_manager)
    return application, cart, p1, q1


def test_criss_cross_merge_bases_are_merged_so_no_reverted_change_comes_back(
    environments, release_manager, criss_cross
):
    dev, qa, pre, prod = environments
    application, cart, p1, q1 = criss_cross

    prepared = prepare(application, qa, dev)

    (module,) = prepared.modules
    assert module.bases == [p1, q1] and module.base is None
    merge(application, qa, dev, release_manager)
    # Development keeps its revert of line 2 and takes Quality Assurance's revert of line 10.
    # Measured from P1 alone, line 10 would stay "qa 10"; from Q1 alone, line 2 would come back.
    assert text_of(cart, dev) == BASE
    item = Merge.objects.latest("id").items.get()
    assert item.base_version is None and item.selection["bases"] == [p1.number, q1.number]


def test_either_merge_base_alone_would_give_a_wrong_result(environments, release_manager, criss_cross):
    """The fixture is a real criss-cross: whichever base were picked, the merge would be wrong."""
    from hotfixes.engine.treemerge import apply, merge_trees
    from lifecycle.models import Blob

    dev, qa, pre, prod = environments
    application, cart, p1, q1 = criss_cross

    def read(digest):
        return bytes(Blob.objects.get(hash=digest).data)

    results = {
        base.number: apply(
            merge_trees(base.manifest(), current(cart, dev).manifest(), current(cart, qa).manifest(), read)
        ).files["cart.py"]
        for base in (p1, q1)
    }
    assert results[p1.number] == edit(BASE, {10: "qa 10"}).encode()
    assert results[q1.number] == edit(BASE, {2: "pre 2"}).encode()


def test_criss_cross_merge_bases_that_conflict_are_refused_with_a_clear_message(
    environments, release_manager
):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "pre 2"})}, user=release_manager)
    publish_files(cart, qa, {"cart.py": edit(BASE, {2: "qa 2"})}, user=release_manager)
    for source, target in ((qa, dev), (pre, dev), (pre, qa)):
        prepared = prepare(application, source, target)
        form = MergeSelectionForm(prepared)
        selections = form.selections()
        for module in prepared.modules:
            for file in module.files:
                for r in file.conflicts:
                    selections[module.module.pk][1].resolutions.setdefault(file.path, {})[r] = ["both 2\n"]
        perform(prepared, selections, user=release_manager, fingerprint=prepared.fingerprint)
    publish_files(cart, qa, {"cart.py": edit(BASE, {2: "both 2", 11: "qa 11"})}, user=release_manager)
    before = counts()

    with pytest.raises(MergeError) as refused:
        prepare(application, qa, dev)

    message = str(refused.value)
    assert "2 equally near merge bases" in message and "they conflict in cart.py" in message
    assert "does not pick one" in message
    assert counts() == before


# Item 18: a merged result the content checks refuse.


@pytest.fixture
def clashing_case(environments, release_manager):
    """Quality Assurance added README.md, Pre-Production readme.md: merged, they clash on Windows."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, qa, {"cart.py": BASE, "README.md": "QA\n"}, user=release_manager)
    publish_files(cart, pre, {"cart.py": BASE, "readme.md": "pre\n"}, user=release_manager)
    return application, cart


def test_a_merged_result_with_clashing_paths_is_refused_and_nothing_written(
    environments, release_manager, clashing_case
):
    dev, qa, pre, prod = environments
    application, cart = clashing_case
    qa_before, before = current(cart, qa), counts()

    with pytest.raises(MergeError, match="cannot be published into Quality Assurance") as refused:
        merge(application, pre, qa, release_manager)

    assert "readme.md" in str(refused.value).lower()
    assert counts() == before and current(cart, qa) == qa_before


def test_an_empty_merged_result_is_refused(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments, {"Cart": {"a.py": "a\n", "b.py": "b\n"}})
    publish_files(cart, qa, {"a.py": "a\n"}, user=release_manager)
    publish_files(cart, pre, {"b.py": "b\n"}, user=release_manager)
    before = counts()

    with pytest.raises(MergeError, match="no files"):
        merge(application, pre, qa, release_manager)

    assert counts() == before


def test_a_merged_result_over_the_limits_is_refused(environments, release_manager, settings):
    dev, qa, pre, prod = environments
    settings.MODULE_MAX_TOTAL_BYTES = 1000
    application, (cart,) = released(environments, {"Cart": {"a.py": "a\n"}})
    publish_files(cart, qa, {"a.py": "a\n", "qa.txt": "q" * 600}, user=release_manager)
    publish_files(cart, pre, {"a.py": "a\n", "pre.txt": "p" * 600}, user=release_manager)
    before = counts()

    with pytest.raises(MergeError, match="cannot be published into Quality Assurance"):
        merge(application, pre, qa, release_manager)

    assert counts() == before


def test_a_refused_module_leaves_the_other_modules_of_the_merge_unwritten(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart, pay) = released(environments, {"Cart": {"cart.py": BASE}, "Pay": {"pay.py": BASE}})
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed"})}, user=release_manager)
    publish_files(pay, qa, {"pay.py": BASE, "README.md": "QA\n"}, user=release_manager)
    publish_files(pay, pre, {"pay.py": BASE, "readme.md": "pre\n"}, user=release_manager)
    before = counts()

    with pytest.raises(MergeError):
        merge(application, pre, qa, release_manager)

    assert counts() == before and text_of(cart, qa) == BASE


# Item 12: a partial merge contains some of the hotfix.


@pytest.fixture
def partly_merged(environments, release_manager):
    """Pre-Production fixed lines 2 and 10; only line 2 was merged into Quality Assurance."""
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed 2", 10: "fixed 10"})}, user=release_manager)
    prepared = prepare(application, pre, qa)
    m, f, r = region_of(prepared, cart, "cart.py", "source", "fixed 10\n")
    selections = MergeSelectionForm(prepared).selections()
    selections[m][1].regions["cart.py"] = set(prepared.modules[0].files[f].source_changes) - {r}
    perform(prepared, selections, user=release_manager, fingerprint=prepared.fingerprint)
    return application, cart, Hotfix.objects.get()


def test_a_partial_merge_contains_some_and_says_what_is_lacking_by_file_and_hunk(environments, partly_merged):
    application, cart, hotfix = partly_merged

    (rows,) = statuses([hotfix], environments).values()

    qa = {row.environment.name: row for row in rows}["Quality Assurance"]
    assert (qa.state, qa.label) == ("some", "contains some changes")
    assert qa.missing == [] and qa.contained == []
    assert qa.lacks == ["eCommerce-Cart: cart.py line 10"]
    development = {row.environment.name: row for row in rows}["Development"]
    assert (development.state, development.lacks) == ("none", ["eCommerce-Cart"])


def test_what_a_partial_merge_lacks_follows_it_into_earlier_environments(
    environments, release_manager, partly_merged
):
    dev, qa, pre, prod = environments
    application, cart, hotfix = partly_merged
    merge(application, qa, dev, release_manager)

    (rows,) = statuses([hotfix], environments).values()

    development = {row.environment.name: row for row in rows}["Development"]
    assert (development.state, development.lacks) == ("some", ["eCommerce-Cart: cart.py line 10"])


def test_a_partial_merge_completed_later_contains_every_change(environments, release_manager, partly_merged):
    dev, qa, pre, prod = environments
    application, cart, hotfix = partly_merged
    merge(application, pre, qa, release_manager)

    (rows,) = statuses([hotfix], environments).values()

    assert {row.environment.name: row.state for row in rows}["Quality Assurance"] == "all"


def test_lacking_files_and_deleted_lines_are_named(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments, {"Cart": {"cart.py": BASE, "old.py": "old\n"}})
    fixed = "".join(line for n, line in enumerate(BASE.splitlines(keepends=True), 1) if n not in (5, 6))
    publish_files(
        cart, pre, {"cart.py": edit(fixed, {1: "fixed 1"}), "new.py": "new\n"}, user=release_manager
    )
    prepared = prepare(application, pre, qa)
    m, f, r = region_of(prepared, cart, "cart.py", "source", "fixed 1\n")
    # Only the first hunk of cart.py is taken: not its deletion, nor the added and the deleted file.
    data = {
        "submitted": "1",
        f"take-module-{m}": "on",
        f"take-file-{m}-{f}": "on",
        f"take-hunk-{m}-{f}-{r}": "on",
    }
    perform(
        prepared,
        MergeSelectionForm(prepared, data).selections(),
        user=release_manager,
        fingerprint=prepared.fingerprint,
    )

    (rows,) = statuses([Hotfix.objects.get()], environments).values()

    qa_row = {row.environment.name: row for row in rows}["Quality Assurance"]
    assert qa_row.lacks == [
        "eCommerce-Cart: cart.py deleted lines 5–6, new.py added file, old.py deleted file"
    ]


def test_the_timeline_marks_a_partial_merge(environments, partly_merged):
    application, cart, hotfix = partly_merged

    events = [event.what for event in timeline(hotfix, environments)]

    assert events == [
        "Opened in Pre-Production",
        "Partly merged into Quality Assurance: some changes were left out",
    ]


def test_marking_solved_records_what_a_partial_merge_lacks(environments, release_manager, partly_merged):
    application, cart, hotfix = partly_merged

    solved = mark_solved(hotfix.pk, environments, user=release_manager, confirm_incomplete=True)

    assert "Quality Assurance lacked eCommerce-Cart: cart.py line 10" in solved.solved_note


# Item 28: editing a conflict keeps the file's line endings.


def test_an_edited_conflict_in_a_crlf_file_takes_its_line_endings(environments, release_manager):
    dev, qa, pre, prod = environments
    crlf = BASE.replace("\n", "\r\n")
    application, (cart,) = released(environments, {"Cart": {"cart.py": crlf}})
    publish_files(cart, dev, {"cart.py": crlf.replace("line 5\r\n", "development 5\r\n")})
    publish_files(cart, pre, {"cart.py": crlf.replace("line 5\r\n", "hotfix 5\r\n")}, user=release_manager)
    prepared = prepare(application, pre, dev)
    m, f, r = region_of(prepared, cart, "cart.py", "conflict", "hotfix 5\r\n")
    data = {"submitted": "1", f"take-module-{m}": "on", f"take-file-{m}-{f}": "on"}
    # As a browser submits a textarea: every line break CRLF, whatever the page showed.
    data |= {f"resolve-{m}-{f}-{r}": "edit", f"edit-{m}-{f}-{r}": "both 5\r\nand more"}

    form = MergeSelectionForm(prepared, data)
    perform(prepared, form.selections(), user=release_manager, fingerprint=prepared.fingerprint)

    merged = files_of(cart, dev)["cart.py"]
    assert merged == crlf.replace("line 5\r\n", "both 5\r\nand more\r\n").encode()
    assert b"\n" not in merged.replace(b"\r\n", b"")


def test_an_edited_conflict_in_an_lf_file_keeps_lf(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, dev, {"cart.py": edit(BASE, {5: "development 5"})})
    publish_files(cart, pre, {"cart.py": edit(BASE, {5: "hotfix 5"})}, user=release_manager)
    prepared = prepare(application, pre, dev)
    m, f, r = region_of(prepared, cart, "cart.py", "conflict", "hotfix 5\n")
    data = {"submitted": "1", f"take-module-{m}": "on", f"take-file-{m}-{f}": "on"}
    data |= {f"resolve-{m}-{f}-{r}": "edit", f"edit-{m}-{f}-{r}": "both 5\r\nand more\r\n"}

    perform(
        prepared,
        MergeSelectionForm(prepared, data).selections(),
        user=release_manager,
        fingerprint=prepared.fingerprint,
    )

    assert text_of(cart, dev) == edit(BASE, {5: "both 5\nand more"})


def test_the_merge_needs_publish_access_to_the_target(environments, viewer, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,) = released(environments)
    publish_files(cart, pre, {"cart.py": edit(BASE, {2: "fixed"})}, user=release_manager)
    prepared = prepare(application, pre, qa)
    before = ModuleVersion.objects.count()
    with pytest.raises(PermissionDenied):
        perform(prepared, None, user=viewer, fingerprint=prepared.fingerprint)
    assert ModuleVersion.objects.count() == before
