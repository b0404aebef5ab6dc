import io
import zipfile

import pytest
from django.urls import reverse

from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    publish_files(
        cart,
        environments[0],
        {
            "cart.py": "def total(lines):\n    return sum(lines)\n",
            "static/logo.png": b"\x89PNG\r\n\x1a\n\0\0binary",
        },
        comment="Add a logo",
    )
    return application, cart


def module_url(module, environment, **query):
    url = reverse("lifecycle:module", args=[module.pk, environment.pk])
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return url


def test_it_shows_the_files_as_a_tree_and_the_history(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    html = client.get(module_url(cart, environments[0])).content.decode()
    assert "cart.py" in html and "static/" in html and "logo.png" in html
    assert 'data-version="2"' in html and 'data-version="1"' in html
    assert "Add a logo" in html
    assert "current in Development" in html


def test_it_shows_a_text_file_with_line_numbers(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    html = client.get(module_url(cart, environments[0], path="cart.py")).content.decode()
    assert '<td class="line-number">2</td><td class="line">    return sum(lines)</td>' in html


def test_it_shows_a_binary_file_as_size_and_hash(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    html = client.get(module_url(cart, environments[0], path="static/logo.png")).content.decode()
    assert "Binary file" in html and "SHA-256" in html


def test_it_answers_htmx_with_the_file_fragment(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    response = client.get(module_url(cart, environments[0], path="cart.py"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="file"')
    assert "Version history" not in html


def test_it_browses_an_older_version(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    html = client.get(module_url(cart, environments[0], version=1)).content.decode()
    assert "Showing <strong>v1</strong>" in html
    assert "logo.png" not in html.split("Version history")[0]


def test_it_downloads_a_version_as_a_zip_byte_for_byte(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    response = client.get(reverse("lifecycle:module-download", args=[cart.pk, environments[0].pk, 2]))
    assert response["Content-Type"] == "application/zip"
    assert 'filename="Shop-Cart-v2.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.read("static/logo.png") == b"\x89PNG\r\n\x1a\n\0\0binary"
    assert sorted(archive.namelist()) == ["cart.py", "static/logo.png"]


def test_it_refuses_module_pages_without_access(client, outsider, environments, shop):
    _, cart = shop
    client.force_login(outsider)
    assert client.get(module_url(cart, environments[0])).status_code == 404
    download = reverse("lifecycle:module-download", args=[cart.pk, environments[0].pk, 1])
    assert client.get(download).status_code == 404


def test_it_answers_404_for_unknown_modules_and_versions(client, viewer, environments, shop):
    _, cart = shop
    client.force_login(viewer)
    assert client.get(reverse("lifecycle:module", args=[999, environments[0].pk])).status_code == 404
    assert (
        client.get(reverse("lifecycle:module-download", args=[cart.pk, environments[0].pk, 99])).status_code
        == 404
    )


def test_it_lists_a_module_page_in_a_fixed_number_of_queries(
    client, viewer, environments, shop, django_assert_max_num_queries
):
    _, cart = shop
    for index in range(10):
        publish_files(cart, environments[0], {f"file{n}.py": f"# {index} {n}" for n in range(30)})
    client.force_login(viewer)
    with django_assert_max_num_queries(10):
        client.get(module_url(cart, environments[0], path="file3.py"))


def test_it_escapes_file_content_and_comments(client, viewer, environments, shop):
    _, cart = shop
    publish_files(cart, environments[0], {"x.html": "<script>alert(1)</script>"}, comment="<b>bold</b>")
    client.force_login(viewer)
    html = client.get(module_url(cart, environments[0], path="x.html")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html


def test_the_file_tree_lists_each_folder_once_before_what_it_holds():
    from lifecycle.views import _file_tree

    paths = ["src/b/two.py", "README.md", "src/a/one.py", "src/a/deeper/three.py", "src/b.py", "docs/x.md"]
    rows = _file_tree([{"path": path} for path in paths])
    assert [(row["depth"], row["name"], row["folder"]) for row in rows] == [
        (0, "README.md", False),
        (0, "docs/", True),
        (1, "x.md", False),
        (0, "src/", True),
        (1, "a/", True),
        (2, "deeper/", True),
        (3, "three.py", False),
        (2, "one.py", False),
        (1, "b/", True),
        (2, "two.py", False),
        (1, "b.py", False),
    ]
    assert [row["path"] for row in rows if row["folder"]] == ["docs", "src", "src/a", "src/a/deeper", "src/b"]


def test_the_file_tree_of_deep_paths():
    """5,000 files under one chain of 500 folders (a module publishing accepts) took 10 seconds to
    lay out; bench/paths.py measures it now. Here: every folder once, then the files."""
    from lifecycle.views import _file_tree

    entries = [{"path": "a/" * 500 + f"f{n}"} for n in range(5000)]
    rows = _file_tree(entries)
    assert len(rows) == 5500
