import re
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hotfixes import comparing
from hotfixes.comparing import compare_application, file_diff, load_inline_diffs
from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import AccessLevel
from lifecycle.tagging import tag_environment
from tests.factories import make_application, make_user, publish_files, released_application

pytestmark = pytest.mark.django_db
COMPARE = reverse("hotfixes:compare")
COMPARE_FILE = reverse("hotfixes:compare-file")

# cart.py as released in 0.3: 30 numbered lines, the defect on line 20.
RELEASED = "".join(f"line {n}\n" for n in range(1, 31)).replace("line 20\n", "total += price\n")
HOTFIXED = RELEASED.replace("total += price\n", "total += price * quantity\n")
# Development's newer work since 0.3: a new first line, far from the fix.
DEV_WORK = "# newer work in Development\n" + RELEASED


@pytest.fixture
def shop(environments, release_manager):
    """eCommerce 0.3 everywhere; then Development moves on and Pre-Production gets a hotfix of cart.py."""
    dev, qa, pre, prod = environments
    application, (cart, catalog) = make_application("eCommerce", ("Cart", "Catalog"))
    publish_files(cart, dev, {"cart.py": RELEASED, "README.md": "The cart\n"})
    publish_files(catalog, dev, {"catalog.py": "products = []\n"})
    tag = tag_environment(application, dev, "0.3")
    for environment in (qa, pre, prod):
        deploy_tag(tag, environment)
    publish_files(cart, dev, {"cart.py": DEV_WORK, "README.md": "The cart\n"}, user=release_manager)
    publish_files(cart, pre, {"cart.py": HOTFIXED, "README.md": "The cart\n"}, user=release_manager)
    return application, cart, catalog


def compare_url(application, source, target):
    return f"{COMPARE}?{urlencode({'application': application.pk, 'source': source.pk, 'target': target.pk})}"


def by_name(comparison):
    return {entry.module.name: entry for entry in comparison.modules}


def changed_lines(changed_file):
    return [
        (line.kind, line.text)
        for hunk in changed_file.diff.hunks
        for line in hunk.lines
        if line.kind != "context"
    ]


# The domain.


def test_it_tells_same_changed_and_only_in_one_side(environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    extra = make_application("Other", ("Extra",))[1][0]
    extra.application = application
    extra.save()
    publish_files(extra, dev, {"extra.py": "x = 1\n"})

    modules = by_name(compare_application(application, dev, pre))
    assert modules["eCommerce-Cart"].status == "changed"
    assert modules["eCommerce-Catalog"].status == "same"
    assert modules["Other-Extra"].status == "only-source"
    assert by_name(compare_application(application, pre, dev))["Other-Extra"].status == "only-target"


def test_it_calls_different_versions_with_the_same_files_the_same(environments, shop, release_manager):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    # A new version in Quality Assurance whose files equal Pre-Production's.
    publish_files(cart, qa, {"cart.py": HOTFIXED, "README.md": "The cart\n"}, user=release_manager)
    entry = by_name(compare_application(application, qa, pre))["eCommerce-Cart"]
    assert entry.source_version != entry.target_version
    assert entry.status == "same"


def test_it_measures_each_side_from_the_merge_base(environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    comparison = compare_application(application, pre, dev)
    load_inline_diffs(comparison)
    entry = by_name(comparison)["eCommerce-Cart"]

    assert entry.base.number == 1  # the version released in 0.3, which both descend from
    assert [(f.path, f.status) for f in entry.source_changes] == [("cart.py", "changed")]
    assert [(f.path, f.status) for f in entry.target_changes] == [("cart.py", "changed")]
    # The hotfix's side shows only the fix, not Development's newer work that Pre-Production lacks.
    assert changed_lines(entry.source_changes[0]) == [
        ("delete", "total += price"),
        ("add", "total += price * quantity"),
    ]
    assert changed_lines(entry.target_changes[0]) == [("add", "# newer work in Development")]


def test_it_uses_the_target_as_base_when_the_source_descends_from_it(environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    entry = by_name(compare_application(application, pre, qa))["eCommerce-Cart"]
    assert entry.base == entry.target_version
    assert entry.target_changes == []
    assert [f.path for f in entry.source_changes] == ["cart.py"]


def test_it_reads_no_content_for_the_module_comparison(environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    with CaptureQueriesContext(connection) as queries:
        compare_application(application, pre, dev)
    assert not any(re.search(r'"lifecycle_blob"\."data"', query["sql"]) for query in queries)


def test_it_diffs_one_file_reading_only_that_file(environments, shop, django_assert_num_queries):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    base, hotfix = cart.versions.get(number=1), cart.versions.get(number=3)
    with django_assert_num_queries(2):  # the two manifest rows, then the two contents
        changed = file_diff(cart, base, hotfix, "cart.py")
    assert changed.status == "changed"
    assert changed.diff.added == 1 and changed.diff.deleted == 1
    with django_assert_num_queries(1):  # same hash: nothing to read
        same = file_diff(cart, base, hotfix, "README.md")
    assert same.status == "unchanged" and not same.diff.hunks
    assert file_diff(cart, base, hotfix, "missing.py") is None


def test_it_folds_unchanged_lines_around_the_hunks(environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    changed = file_diff(cart, cart.versions.get(number=1), cart.versions.get(number=3), "cart.py")
    sections = changed.sections
    # Line 20 changed with 3 lines of context: 17-23 shown, 16 lines folded before and 7 after.
    assert [section.folded for section in sections] == [16, 7]
    numbers = [(line.old_number, line.new_number) for line in sections[0].hunk.lines]
    assert numbers[0] == (17, 17) and numbers[-1] == (23, 23)
    assert (20, None) in numbers and (None, 20) in numbers


def hotfixed_application(name, count, environments, user):
    """An application of `count` modules released everywhere, each with a hotfix in Pre-Production."""
    application, modules, _ = released_application(
        name, environments, [f"M{n}" for n in range(count)], number="1.0"
    )
    for module in modules:
        publish_files(module, environments[2], {"main.py": f"# {module.name}\nprint('fixed')\n"}, user=user)
    return application


def test_it_keeps_the_query_count_whatever_the_number_of_modules(
    environments, release_manager, django_assert_max_num_queries
):
    dev, qa, pre, prod = environments
    small = hotfixed_application("Small", 3, environments, release_manager)
    large = hotfixed_application("Large", 30, environments, release_manager)
    with CaptureQueriesContext(connection) as queries:
        comparison = compare_application(small, pre, qa)
        load_inline_diffs(comparison)
    assert comparison.changed == 3
    with django_assert_max_num_queries(len(queries)):
        comparison = compare_application(large, pre, qa)
        load_inline_diffs(comparison)
    assert comparison.changed == 30
    assert all(entry.source_changes[0].diff.added == 1 for entry in comparison.modules)


def test_the_page_keeps_its_query_count_whatever_the_number_of_modules(
    client, viewer, environments, release_manager, django_assert_max_num_queries
):
    dev, qa, pre, prod = environments
    small = hotfixed_application("Small", 3, environments, release_manager)
    large = hotfixed_application("Large", 30, environments, release_manager)
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(compare_url(small, pre, qa)).status_code == 200
    with django_assert_max_num_queries(len(queries)):
        html = client.get(compare_url(large, pre, qa)).content.decode()
    assert html.count('<span class="compare-badge compare-badge-changed">changed</span>') == 30


# The page.


def test_it_shows_the_comparison_module_by_module(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(viewer)
    response = client.get(compare_url(application, pre, dev))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert "Compare eCommerce: Pre-Production and Development" in html
    cart_section = html.split('data-module="eCommerce-Cart"')[1].split('data-module="eCommerce-Catalog"')[0]
    assert '<span class="compare-badge compare-badge-changed">changed</span>' in cart_section
    assert "merge base v1" in cart_section
    assert (
        'Changes in Pre-Production since v1 <span class="compare-versions">(v1 → v3)</span>' in cart_section
    )
    assert 'Changes in Development since v1 <span class="compare-versions">(v1 → v2)</span>' in cart_section
    catalog_section = html.split('data-module="eCommerce-Catalog"')[1]
    assert '<span class="compare-badge compare-badge-same">same</span>' in catalog_section


def test_it_shows_line_numbers_colours_and_folds(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(viewer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    assert re.search(
        r'<tr class="diff-line diff-line-delete"><td class="line-number">20</td><td class="line-number"></td>'
        r'.*?<td class="diff-text">total \+= price</td>',
        html,
    )
    assert re.search(
        r'<tr class="diff-line diff-line-add"><td class="line-number"></td><td class="line-number">20</td>'
        r'.*?<td class="diff-text">total \+= price \* quantity</td>',
        html,
    )
    assert "⋯ 16 unchanged lines" in html and "⋯ 7 unchanged lines" in html


def test_it_shows_a_binary_file_as_changed_with_its_sizes(client, viewer, environments, release_manager):
    dev, qa, pre, prod = environments
    application, (web,), _ = released_application("Web", environments, ("UI",))
    publish_files(web, pre, {"main.py": "# Web-UI\nprint('hello')\n", "logo.png": b"\x89PNG\0" + b"x" * 2000})
    client.force_login(viewer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    assert "logo.png" in html
    assert re.search(r"Binary file added:\s*none →\s*2.0\xa0KB", html)


def test_it_loads_a_large_diff_on_demand(client, viewer, environments, release_manager):
    dev, qa, pre, prod = environments
    application, (module,), _ = released_application("Big", environments, ("Data",))
    many = "".join(f"row {n}\n" for n in range(300))
    huge = "x" * (comparing.INLINE_MAX_BYTES + 10) + "\n"
    publish_files(
        module, pre, {"main.py": "# Big-Data\nprint('hello')\n", "many.txt": many, "huge.txt": huge}
    )
    client.force_login(viewer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    assert "300 changed lines" in html and "large file" in html
    assert "row 150" not in html and "x" * 1000 not in html
    links = re.findall(r'hx-get="(/compare/file\?[^"]+)"', html)
    assert len(links) == 2
    many_link = next(link for link in links if "many.txt" in link).replace("&amp;", "&")
    assert f'href="{many_link.replace("&", "&amp;")}"' in html  # a real link too, for no JavaScript

    fragment = client.get(many_link, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section class="compare-file"') and "<html" not in fragment
    assert '<td class="line-number">300</td>' in fragment and "row 150" in fragment
    page = client.get(many_link).content.decode()
    assert "<html" in page and "row 150" in page


def test_it_answers_htmx_with_the_comparison_fragment(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(viewer)
    response = client.get(compare_url(application, pre, qa), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="compare"') and "<html" not in html
    boosted = client.get(
        compare_url(application, pre, qa), headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert "<html" in boosted.content.decode()


def test_it_links_to_merging_the_changes(client, developer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(developer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    merge = reverse("hotfixes:merge")
    assert (
        f'href="{merge}?application={application.pk}&amp;source={pre.pk}&amp;target={qa.pk}">'
        "Merge these changes into Quality Assurance</a>"
    ) in html
    # Quality Assurance has nothing Pre-Production lacks: nothing to merge the other way.
    assert "Merge these changes into Pre-Production" not in html
    # Production comes after Pre-Production: its hotfix reaches it by Tag & Deploy, never a merge.
    html = client.get(compare_url(application, pre, prod)).content.decode()
    assert "Merge these changes into Production" not in html
    assert (
        "Pre-Production has changes that Production lacks: they reach Production by Tag &amp; Deploy" in html
    )


def merge_links(html):
    """(label, source id, target id) of every merge link of the page."""
    return [
        (label, int(source), int(target))
        for source, target, label in re.findall(
            r'href="/merge/\?application=\d+&amp;source=(\d+)&amp;target=(\d+)">([^<]*)</a>', html
        )
    ]


@pytest.mark.parametrize("order", ["earlier-first", "later-first"])
def test_it_never_offers_to_merge_unreleased_work_forward(client, release_manager, environments, shop, order):
    """Development's newer work reaches Quality Assurance by Tag & Deploy: no merge into it is offered."""
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(release_manager)
    source, target = (dev, qa) if order == "earlier-first" else (qa, dev)

    html = client.get(compare_url(application, source, target)).content.decode()

    assert "Merge these changes into Quality Assurance" not in html
    assert all(target_id == dev.pk for _, _, target_id in merge_links(html))
    assert "Development has changes that Quality Assurance lacks: they reach Quality Assurance by Tag" in html


@pytest.mark.parametrize("order", ["earlier-first", "later-first"])
def test_the_backward_merge_is_the_primary_action_and_says_it_propagates_the_hotfix(
    client, release_manager, environments, shop, order
):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(release_manager)
    source, target = (qa, pre) if order == "earlier-first" else (pre, qa)

    html = client.get(compare_url(application, source, target)).content.decode()

    assert merge_links(html) == [("Merge these changes into Quality Assurance", pre.pk, qa.pk)]
    assert re.search(r'<a class="button primary" href="/merge/[^"]*">Merge these changes into Quality', html)
    backward = html.split('class="compare-merge-backward"', 1)[1].split("</p>", 1)[0]
    assert "merging them propagates the hotfix back into Quality Assurance" in backward


def test_it_labels_the_hotfix_changes_and_lists_their_modules_first(environments, release_manager):
    """Zulu carries Pre-Production's hotfix, Alpha only Development's work: Zulu comes first, labelled."""
    dev, qa, pre, prod = environments
    application, (alpha, zulu), _ = released_application("Shop", environments, ("Alpha", "Zulu"))
    publish_files(alpha, dev, {"main.py": "# newer work\n"}, user=release_manager)
    publish_files(zulu, pre, {"main.py": "# the hotfix\n", "notes.txt": "why\n"}, user=release_manager)
    publish_files(zulu, dev, {"main.py": "# Shop-Zulu\nprint('hello')\n", "dev.txt": "dev\n"})

    comparison = compare_application(application, dev, pre)

    assert [entry.module.name for entry in comparison.modules] == ["Shop-Zulu", "Shop-Alpha"]
    zulu_entry, alpha_entry = comparison.modules
    assert zulu_entry.hotfix_side == "target" and alpha_entry.hotfix_side == ""
    assert {f.path: f.hotfix for f in zulu_entry.target_changes} == {"main.py": True, "notes.txt": True}
    assert {f.path: f.hotfix for f in zulu_entry.source_changes} == {"dev.txt": False}
    assert comparison.propagates_hotfix and comparison.later == pre


def test_the_page_labels_the_hotfix_changes(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(viewer)
    html = client.get(compare_url(application, dev, pre)).content.decode()
    cart_section = html.split('data-module="eCommerce-Cart"', 1)[1].split("</section>\n  <section", 1)[0]
    assert '<span class="hotfix-label"' in cart_section.split("</h2>", 1)[0]
    target_side = cart_section.split('data-side="target"', 1)[1]
    assert "hotfix change</span>" in target_side.split('data-path="README.md"', 1)[0]
    source_side = cart_section.split('data-side="source"', 1)[1].split('data-side="target"', 1)[0]
    assert "hotfix change" not in source_side


def test_it_escapes_names_paths_and_content(client, viewer, environments, release_manager):
    dev, qa, pre, prod = environments
    application, (module,), _ = released_application("<b>Shop</b>", environments, ("<i>UI</i>",))
    publish_files(
        module,
        pre,
        {
            "main.py": "# x\nprint('<script>alert(1)</script>')\n",
            # Paths cannot hold < > or " (they must check out on Windows); ' and & they can.
            "x' onmouseover='alert(2)&.txt": "a & b\n",
        },
    )
    client.force_login(viewer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x' onmouseover" not in html and "x&#x27; onmouseover=&#x27;alert(2)&amp;.txt" in html
    assert "<b>Shop" not in html and "&lt;b&gt;Shop&lt;/b&gt;" in html
    assert "<i>UI" not in html and "&lt;b&gt;Shop&lt;/b&gt;-&lt;i&gt;UI&lt;/i&gt;" in html


def test_it_escapes_the_path_in_the_show_diff_link(client, viewer, environments):
    dev, qa, pre, prod = environments
    application, (module,), _ = released_application("Odd", environments, ("Paths",))
    path = "a&b 'c' #d.txt"
    publish_files(module, pre, {"main.py": "# x\n", path: "y\n" * 300})
    client.force_login(viewer)
    html = client.get(compare_url(application, pre, qa)).content.decode()
    link = re.search(r'hx-get="(/compare/file\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "path=a%26b%20%27c%27%20%23d.txt" in link
    fragment = client.get(link, headers={"HX-Request": "true"}).content.decode()
    assert 'data-path="a&amp;b &#x27;c&#x27; #d.txt"' in fragment


def test_it_refuses_a_user_who_cannot_see_both_environments(client, outsider, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    half = make_user("half", {qa: AccessLevel.VIEW})
    for user in (outsider, half):
        client.force_login(user)
        assert client.get(compare_url(application, pre, qa)).status_code == 404
        query = urlencode(
            {
                "application": application.pk,
                "source": pre.pk,
                "target": qa.pk,
                "module": cart.pk,
                "base": 1,
                "version": 3,
                "path": "cart.py",
            }
        )
        assert client.get(f"{COMPARE_FILE}?{query}").status_code == 404


def test_it_answers_404_for_unknown_or_missing_things(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    other = make_application("Other", ("Thing",))[1][0]
    client.force_login(viewer)
    assert client.get(COMPARE).status_code == 404
    assert client.get(f"{COMPARE}?application={application.pk}&source=x&target={qa.pk}").status_code == 404
    base = {"application": application.pk, "source": pre.pk, "target": qa.pk, "base": 1, "version": 3}
    for extra in ({"module": other.pk, "path": "cart.py"}, {"module": cart.pk, "path": "nope.py"}):
        assert client.get(f"{COMPARE_FILE}?{urlencode({**base, **extra})}").status_code == 404
    assert (
        client.get(f"{COMPARE_FILE}?{urlencode({**base, 'module': cart.pk, 'path': 'cart.py'})}").status_code
        == 200
    )


def test_it_needs_login(client, environments, shop):
    application, cart, catalog = shop
    response = client.get(compare_url(application, environments[2], environments[1]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_application_page_offers_compare_between_neighbours(client, viewer, environments, shop):
    dev, qa, pre, prod = environments
    application, cart, catalog = shop
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    url = compare_url(application, qa, pre).replace("&", "&amp;")
    assert f'href="{url}"' in html and f'hx-get="{url}" hx-target="#dialog-body"' in html
    assert "Compare Quality Assurance and Pre-Production</span>" in html
    assert html.count('class="button compare-button') == 3


def test_it_shows_each_side_whole_without_common_history(client, viewer, environments, release_manager):
    dev, qa, pre, prod = environments
    application, (module,) = make_application("Twice", ("Born",))
    publish_files(module, dev, {"a.py": "a = 1\n"})
    publish_files(module, qa, {"b.py": "b = 1\n" * 300}, user=release_manager)  # no parent: a second root
    entry = by_name(compare_application(application, dev, qa))["Twice-Born"]
    assert entry.status == "changed" and entry.base is None
    assert [(f.path, f.status) for f in entry.source_changes] == [("a.py", "added")]
    assert [(f.path, f.status) for f in entry.target_changes] == [("b.py", "added")]

    client.force_login(viewer)
    html = client.get(compare_url(application, dev, qa)).content.decode()
    assert "share no history for this module" in html and "merge base none" in html
    link = re.search(r'hx-get="(/compare/file\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "base=&" in link
    fragment = client.get(link, headers={"HX-Request": "true"}).content.decode()
    assert '<td class="line-number">300</td>' in fragment


# Criss-cross histories (item 16).


def test_it_measures_a_criss_cross_from_the_merged_bases(environments, release_manager):
    """Each side reverted the other's change after merging it: measured from either base alone,
    one side would show a change it never made."""
    from hotfixes.merging import perform, prepare

    dev, qa, pre, prod = environments
    application, (cart,), _ = released_application("Shop", environments, ("Cart",))
    base = "".join(f"line {n}\n" for n in range(1, 13))
    publish_files(cart, dev, {"main.py": base}, user=release_manager)
    tag = tag_environment(application, dev, "0.4")
    for environment in (qa, pre, prod):
        deploy_tag(tag, environment)
    p1 = publish_files(cart, pre, {"main.py": base.replace("line 2\n", "pre 2\n")}, user=release_manager)
    q1 = publish_files(cart, qa, {"main.py": base.replace("line 10\n", "qa 10\n")}, user=release_manager)
    for source, target in ((qa, dev), (pre, dev), (pre, qa)):
        prepared = prepare(application, source, target)
        perform(prepared, None, user=release_manager, fingerprint=prepared.fingerprint)
    publish_files(cart, dev, {"main.py": base.replace("line 10\n", "qa 10\n")}, user=release_manager)
    publish_files(cart, qa, {"main.py": base.replace("line 2\n", "pre 2\n")}, user=release_manager)

    comparison = compare_application(application, qa, dev)
    load_inline_diffs(comparison)

    (entry,) = comparison.modules
    assert entry.bases == [p1, q1] and entry.base is None
    assert changed_lines(entry.source_changes[0]) == [("delete", "qa 10"), ("add", "line 10")]
    assert changed_lines(entry.target_changes[0]) == [("delete", "pre 2"), ("add", "line 2")]
