import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lifecycle.tagging import tag_environment
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db
URL = reverse("lifecycle:pipeline")


def cell(html, application, environment):
    """The text of one grid cell, whitespace collapsed."""
    row = re.search(rf'<tr data-application="{re.escape(application)}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, f"no row for {application}"
    match = re.search(
        rf'<td class="([^"]*)" data-environment="{re.escape(environment)}"[^>]*>(.*?)</td>',
        row.group(1),
        re.S,
    )
    assert match, f"no cell for {environment}"
    text = re.sub(r"<[^>]+>", " ", match.group(2))
    return match.group(1).split(), " ".join(text.split())


def test_it_asks_anonymous_users_to_log_in(client, environments):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_refuses_a_user_without_access(client, outsider):
    client.force_login(outsider)
    response = client.get(URL)
    assert response.status_code == 403


def test_it_shows_each_cell_state(client, viewer, environments):
    dev, qa, pre, prod = environments
    released_application("Released", environments, number="0.3")
    _, (changed,), _ = released_application("Changed", environments, number="1.2")
    publish_files(changed, dev, {"main.py": "newer"})
    _, (new,) = make_application("Untagged", ["Core"])
    publish_files(new, dev, {"main.py": "x"})
    _, (fixed,), _ = released_application("Hotfixed", environments, number="2.1")
    publish_files(fixed, pre, {"main.py": "fix"})
    client.force_login(viewer)
    html = client.get(URL).content.decode()

    assert cell(html, "Released", "Production") == (["cell"], "0.3")
    assert cell(html, "Changed", "Development") == (["cell"], "1.2+ 1 module changed")
    assert cell(html, "Changed", "Quality Assurance") == (["cell"], "1.2")
    assert cell(html, "Untagged", "Development") == (["cell"], "–+ 1 module changed")
    assert cell(html, "Untagged", "Production") == (["cell", "empty"], "–")
    assert cell(html, "Hotfixed", "Pre-Production") == (["cell", "hotfix"], "2.1+ hotfix 1 module changed")
    assert cell(html, "Hotfixed", "Production") == (["cell"], "2.1")


def test_it_marks_neighbouring_environments_that_differ(client, viewer, environments):
    _, (changed,), _ = released_application("Changed", environments)
    publish_files(changed, environments[0], {"main.py": "newer"})
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    row = re.search(r'<tr data-application="Changed"[^>]*>(.*?)</tr>', html, re.S).group(1)
    marks = re.findall(r'<td class="gap">(.*?)</td>', row, re.S)
    assert len(marks) == 3
    assert re.search("1 module differs? between Development and Quality Assurance", marks[0])
    assert marks[1].strip() == marks[2].strip() == ""


def test_it_filters_by_name(client, viewer, environments):
    released_application("eCommerce", environments)
    released_application("HR Portal", environments)
    client.force_login(viewer)
    html = client.get(URL, {"q": "comm"}).content.decode()
    assert 'data-application="eCommerce"' in html
    assert 'data-application="HR Portal"' not in html


def test_it_filters_applications_with_differences_and_hotfixes(client, viewer, environments):
    released_application("Quiet", environments)
    _, (changed,), _ = released_application("Changed", environments)
    publish_files(changed, environments[0], {"main.py": "newer"})
    _, (fixed,), _ = released_application("Hotfixed", environments)
    publish_files(fixed, environments[2], {"main.py": "fix"})
    client.force_login(viewer)

    differences = client.get(URL, {"show": "differences"}).content.decode()
    assert re.findall(r'data-application="([^"]+)"', differences) == ["Changed", "Hotfixed"]
    hotfixes = client.get(URL, {"show": "hotfixes"}).content.decode()
    assert re.findall(r'data-application="([^"]+)"', hotfixes) == ["Hotfixed"]
    everything = client.get(URL, {"show": "bogus"}).content.decode()
    assert re.findall(r'data-application="([^"]+)"', everything) == ["Changed", "Hotfixed", "Quiet"]


def test_it_keeps_the_filter_in_plain_links(client, viewer, environments):
    client.force_login(viewer)
    html = client.get(URL, {"q": "shop"}).content.decode()
    assert 'href="/?q=shop&amp;show=differences"' in html


def test_it_answers_htmx_with_the_grid_fragment(client, viewer, environments):
    released_application("Shop", environments)
    client.force_login(viewer)
    response = client.get(URL, {"show": "differences"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="grid"')
    assert "<html" not in html
    # The fragment brings the filter form's "show" value along, without an out-of-band swap.
    assert '<input type="hidden" name="show" value="differences" form="filters">' in html
    assert "hx-swap-oob" not in html
    assert 'hx-trigger="every 5s, refresh-now"' in html  # Polls, and at once when the tab is shown again.
    assert "/?show=differences" in html


def test_it_hides_environments_the_user_cannot_see(client, environments):
    from lifecycle.models import AccessLevel
    from tests.factories import make_user

    released_application("Shop", environments)
    partial = make_user("partial", {environments[0]: AccessLevel.VIEW, environments[1]: AccessLevel.PUBLISH})
    client.force_login(partial)
    html = client.get(URL).content.decode()
    assert 'data-environment="Quality Assurance"' in html
    assert 'data-environment="Production"' not in html


def test_it_escapes_application_names(client, viewer, environments):
    released_application("<script>alert(1)</script>", environments)
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _grid_queries(client, user):
    client.force_login(user)
    with CaptureQueriesContext(connection) as context:
        response = client.get(URL)
    assert response.status_code == 200
    return len(context.captured_queries)


def test_it_runs_the_same_number_of_queries_for_3_and_60_applications(client, viewer, environments):
    def add(count, start):
        for index in range(start, start + count):
            _, modules, _ = released_application(f"App {index:03}", environments, module_names=("A", "B"))
            publish_files(modules[0], environments[0], {"main.py": f"work {index}"})
            if index % 3 == 0:
                publish_files(modules[1], environments[2], {"main.py": f"fix {index}"})

    add(3, 0)
    few = _grid_queries(client, viewer)
    add(57, 3)
    many = _grid_queries(client, viewer)
    assert few == many
    # 9, one to look for a tag whose contents an environment with `+` runs (build_rows), and the revision.
    assert many <= 11


def test_it_pins_the_grid_query_count(client, viewer, environments, django_assert_max_num_queries):
    for index in range(5):
        released_application(f"App {index}", environments, module_names=("A", "B", "C"))
    client.force_login(viewer)
    with django_assert_max_num_queries(10):  # 9, and the pipeline revision read first (lifecycle/refresh.py)
        client.get(URL)


def test_it_shows_the_tag_after_tagging_the_development_state(client, viewer, environments):
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    publish_files(core, environments[0], {"main.py": "0.4 work"})
    tag_environment(application, environments[0], "0.4")
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    assert cell(html, "Shop", "Development") == (["cell"], "0.4")
    assert cell(html, "Shop", "Quality Assurance") == (["cell"], "0.3")
