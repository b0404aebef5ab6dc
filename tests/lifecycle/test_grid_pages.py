"""The grid in pages of GRID_PAGE_SIZE applications, its filters and search across them, and its markup.

The cells are written in Python (lifecycle/grid_cells.py), not by the template language: every
name that reaches them must still come out escaped.
"""

import gzip
import re

import pytest
from django.urls import reverse

from lifecycle.models import Environment, Module
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db
URL = reverse("lifecycle:pipeline")


def names(html):
    return re.findall(r'<tr data-application="([^"]+)"', html)


def page_links(html):
    """The hrefs of the Previous and Next links, by their rel."""
    return {
        rel: href.replace("&amp;", "&")
        for href, rel in re.findall(r'<a href="([^"]+)" rel="(prev|next)"', html)
    }


@pytest.fixture
def five(settings, environments):
    """App 1 … App 5, pages of two; App 2 and App 4 changed in Development."""
    settings.GRID_PAGE_SIZE = 2
    for index in range(1, 6):
        _, (core,), _ = released_application(f"App {index}", environments)
        if index % 2 == 0:
            publish_files(core, environments[0], {"main.py": f"work {index}"})


def test_it_shows_one_page_at_a_time_with_plain_links(client, viewer, five):
    client.force_login(viewer)
    first = client.get(URL).content.decode()
    assert names(first) == ["App 1", "App 2"]
    assert "Applications 1–2 of 5 (page 1 of 3)" in first
    assert page_links(first) == {"next": "/?page=2"}

    second = client.get(page_links(first)["next"]).content.decode()
    assert names(second) == ["App 3", "App 4"]
    assert page_links(second) == {"prev": "/?page=1", "next": "/?page=3"}
    assert names(client.get(URL, {"page": 3}).content.decode()) == ["App 5"]


def test_the_htmx_fragment_is_paged_too(client, viewer, five):
    client.force_login(viewer)
    fragment = client.get(URL, {"page": 2}, headers={"HX-Request": "true"}).content.decode()
    assert names(fragment) == ["App 3", "App 4"]
    assert "<html" not in fragment


@pytest.mark.parametrize(
    ("page", "shown"), [("99", ["App 5"]), ("0", ["App 5"]), ("two", ["App 1", "App 2"])]
)
def test_a_page_out_of_range_shows_the_nearest_one(client, viewer, five, page, shown):
    """Django's Paginator.get_page: past the end is the last page, not a number is the first."""
    client.force_login(viewer)
    response = client.get(URL, {"page": page})
    assert response.status_code == 200
    assert names(response.content.decode()) == shown


def test_filters_page_the_rows_they_keep(client, viewer, five, environments):
    client.force_login(viewer)
    for index in (1, 3):  # Four applications with differences now: App 1, 2, 3, 4.
        core = Module.objects.get(application__name=f"App {index}")
        publish_files(core, environments[0], {"main.py": "more work"})
    first = client.get(URL, {"show": "differences"}).content.decode()
    assert names(first) == ["App 1", "App 2"]
    assert "Applications 1–2 of 4 (page 1 of 2)" in first
    assert page_links(first) == {"next": "/?show=differences&page=2"}
    assert names(client.get(URL, {"show": "differences", "page": 2}).content.decode()) == ["App 3", "App 4"]


def test_a_filter_link_goes_back_to_the_first_page(client, viewer, five):
    client.force_login(viewer)
    html = client.get(URL, {"page": 2}).content.decode()
    links = re.findall(r'<a href="([^"]+)" class="[^"]*"', html)
    assert "/?show=differences" in [link.replace("&amp;", "&") for link in links]
    assert not [link for link in links if "page=" in link]
    only_changed = client.get(URL, {"show": "differences", "page": 2}).content.decode()
    assert names(only_changed) == ["App 2", "App 4"]  # Two rows with differences: page 2 is past the last


def test_the_search_reaches_every_page_and_keeps_the_query_in_its_links(client, viewer, five, environments):
    client.force_login(viewer)
    for index in range(6, 9):
        released_application(f"Zed {index}", environments)
    html = client.get(URL, {"q": "zed"}).content.decode()
    assert names(html) == ["Zed 6", "Zed 7"]
    assert page_links(html) == {"next": "/?q=zed&page=2"}
    assert names(client.get(URL, {"q": "zed", "page": 2}).content.decode()) == ["Zed 8"]
    # Apps 1-5 sort before Zed: a search finds matches on what would be the last page unfiltered.
    assert names(client.get(URL, {"q": "8"}).content.decode()) == ["Zed 8"]


def test_a_single_page_has_no_page_links(client, viewer, environments):
    released_application("Solo", environments)
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    assert 'aria-label="Pages"' not in html
    assert names(html) == ["Solo"]


def test_every_row_has_a_stable_id(client, viewer, five):
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    ids = re.findall(r'<tr data-application="[^"]+" id="row-(\d+)"', html)
    assert len(ids) == 2
    assert ids == re.findall(r'<tr data-application="[^"]+" id="row-(\d+)"', client.get(URL).content.decode())


PAYLOAD = '<b x="1">&amp;\'"</b>'


def test_the_cells_escape_every_name(client, release_manager, environments):
    """Application, environment and tag text in cells, titles, arrows and their hidden words."""
    Environment.objects.filter(pk=environments[1].pk).update(name=f"QA {PAYLOAD}")
    application, (core,), _ = released_application(f"App {PAYLOAD}", environments)
    publish_files(core, environments[0], {"main.py": "newer"})
    fresh, (module,) = make_application(f"New {PAYLOAD}")
    publish_files(module, environments[0], {"main.py": "first"})
    client.force_login(release_manager)
    html = client.get(URL).content.decode()
    assert "<b x=" not in html
    assert PAYLOAD not in html
    escaped = "&lt;b x=&quot;1&quot;&gt;&amp;amp;&#x27;&quot;&lt;/b&gt;"
    assert html.count(f'data-application="App {escaped}"') == 1
    assert f'title="App {escaped} in Development: 0.3+"' in html
    assert f"Deploy App {escaped} from Development to QA {escaped} (1 module differs)" in html
    assert f'data-environment="QA {escaped}"' in html
    assert f'title="1 module differs between Development and QA {escaped}: deploy"' in html
    assert f'title="New {escaped} in Development: –+"' in html
    assert f'href="/deploy/?source={environments[0].pk}&amp;target={environments[1].pk}' in html


def test_pages_are_gzipped_with_a_fresh_csrf_mask_each_time(client, viewer, five):
    """The compression decision (docs/security.md, "Compression"): Django gzips, BREACH mitigated."""
    client.force_login(viewer)
    answers = [client.get(URL, headers={"Accept-Encoding": "gzip"}) for _ in range(2)]
    tokens = []
    for answer in answers:
        assert answer["Content-Encoding"] == "gzip"
        html = gzip.decompress(answer.content).decode()
        assert names(html) == ["App 1", "App 2"]
        tokens.append(re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1))
    assert tokens[0] != tokens[1]  # Masked per response: nothing constant for BREACH to guess
    assert "Content-Encoding" not in client.get(URL)  # Only to clients that ask for it
