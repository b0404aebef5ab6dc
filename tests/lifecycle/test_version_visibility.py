"""Who may read which module version (issue 9, items 2 and 10), through every way in.

The rule (lifecycle.visibility, docs/security.md): a user sees a module version only if it was
published in, or has ever been current in, an environment they can view. Anything else answers
404, like a version that does not exist. Superusers see all.
"""

import io
import re
import zipfile
from email.message import Message
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lifecycle.cli import EXIT_NOT_FOUND
from lifecycle.models import AccessLevel, Module
from lifecycle.publishing import publish
from lifecycle.tokens import create_token
from lifecycle.visibility import visible_versions
from tests.factories import make_application, make_user, publish_files, released_application

pytestmark = pytest.mark.django_db

SECRET = "PRODUCTION-ONLY secret fix"
COMMENT = "Confidential: the outage fix"


@pytest.fixture
def world(environments):
    """Shop-Cart 0.3 (v1) everywhere; then v2 published straight into Production, and only there."""
    dev, qa, pre, prod = environments
    application, (module,), _ = released_application("Shop", environments, module_names=("Cart",))
    hidden = publish_files(module, prod, {"main.py": SECRET + "\n"}, comment=COMMENT)
    assert hidden.number == 2
    return SimpleNamespace(application=application, module=module, dev=dev, qa=qa, pre=pre, prod=prod)


def _dev_only(world):
    return make_user("dev-only", {world.dev: AccessLevel.VIEW})


def _production_viewer(world):
    return make_user("prod-viewer", {world.dev: AccessLevel.VIEW, world.prod: AccessLevel.VIEW})


def _superuser(world):
    return make_user("root", is_superuser=True, is_staff=True)


PERSONAS = {
    "dev-only": (_dev_only, 404),
    "production-viewer": (_production_viewer, 200),
    "superuser": (_superuser, 200),
}


def _module_page(w, client, user, **headers):
    url = reverse("lifecycle:module", args=[w.module.pk, w.dev.pk])
    return client.get(f"{url}?version=2&path=main.py", headers=headers)


def _compare_file(w, client, user, version, base):
    query = {
        "application": w.application.pk,
        "source": w.dev.pk,
        "target": w.dev.pk,
        "module": w.module.pk,
        "version": version,
        "base": base,
        "path": "main.py",
    }
    return client.get(f"{reverse('hotfixes:compare-file')}?{urlencode(query)}")


def _api_archive(w, client, user):
    raw = create_token(user, "ci")[1]
    url = reverse("api:version-archive", args=[w.module.name, 2])
    return client.get(url, headers={"Authorization": f"Bearer {raw}"})


class _Ran:
    """A command's outcome in the shape of a response: 200 and the written zip, or 404."""

    def __init__(self, status_code, content=b""):
        self.status_code, self.content = status_code, content
        self.headers = {"Content-Type": "application/zip" if content else "text/plain"}

    def __getitem__(self, name):
        return self.headers[name]


def _command_download(w, client, user, tmp_path):
    target = tmp_path / "out.zip"
    try:
        call_command(
            "download",
            "Development",
            w.module.name,
            str(target),
            user=user.username,
            number=2,
            stdout=io.StringIO(),
        )
    except CommandError as error:
        return _Ran(404 if error.returncode == EXIT_NOT_FOUND else error.returncode)
    return _Ran(200, target.read_bytes())


READ_PATHS = {
    "module page": lambda w, c, u, t: _module_page(w, c, u),
    "module page as an htmx fragment": lambda w, c, u, t: _module_page(w, c, u, **{"HX-Request": "true"}),
    "module download": lambda w, c, u, t: c.get(
        reverse("lifecycle:module-download", args=[w.module.pk, w.dev.pk, 2])
    ),
    "version diff": lambda w, c, u, t: c.get(reverse("hotfixes:diff", args=[w.module.pk, 1, 2])),
    "compare file, version=": lambda w, c, u, t: _compare_file(w, c, u, version=2, base=1),
    "compare file, base=": lambda w, c, u, t: _compare_file(w, c, u, version=1, base=2),
    "API version archive": lambda w, c, u, t: _api_archive(w, c, u),
    "command download --version": lambda w, c, u, t: _command_download(w, c, u, t),
}


def _readable_text(response) -> str:
    """What the response lets its reader see: the page, or every file of a zip."""
    if response["Content-Type"] == "application/zip":
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        return "".join(archive.read(name).decode() for name in archive.namelist())
    return response.content.decode()


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("path", READ_PATHS)
def test_a_version_published_only_in_production_is_read_only_by_who_views_production(
    world, client, persona, path, tmp_path
):
    make, expected = PERSONAS[persona]
    user = make(world)
    client.force_login(user)
    response = READ_PATHS[path](world, client, user, tmp_path)
    assert response.status_code == expected, _readable_text(response)[:500]
    text = _readable_text(response)
    if expected == 200:
        assert SECRET in text
    else:
        # Not even its comment or where it was published: as if it did not exist.
        assert SECRET not in text and COMMENT not in text


def test_a_version_once_current_where_the_user_looks_stays_visible(world):
    """v1 was published in Development and deployed to Quality Assurance, which has moved on since."""
    qa_only = make_user("qa-only", {world.qa: AccessLevel.VIEW})
    publish_files(world.module, world.qa, {"main.py": "a fix in Quality Assurance\n"})  # v3
    assert sorted(visible_versions(qa_only, world.module).values_list("number", flat=True)) == [1, 3]
    assert visible_versions(_superuser(world), world.module).count() == 3
    assert not visible_versions(make_user("nobody"), world.module).exists()


def test_the_module_page_lists_only_the_versions_the_user_may_see(world, client):
    url = reverse("lifecycle:module", args=[world.module.pk, world.dev.pk])
    client.force_login(_dev_only(world))
    history = client.get(url).content.decode().split("Version history")[1]
    assert 'data-version="1"' in history
    assert 'data-version="2"' not in history
    assert COMMENT not in history and "Production" not in history

    client.force_login(_production_viewer(world))
    history = client.get(url).content.decode().split("Version history")[1]
    assert 'data-version="2"' in history and COMMENT in history and "Production" in history


def test_the_module_page_reads_the_rule_in_a_fixed_number_of_queries(world, client):
    """No query per version, whether the versions are hidden or shown."""
    user = _dev_only(world)
    client.force_login(user)
    url = reverse("lifecycle:module", args=[world.module.pk, world.dev.pk])

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    before = count()
    for n in range(5):
        publish_files(world.module, world.prod, {"main.py": f"prod {n}\n"})
        publish_files(world.module, world.dev, {"main.py": f"dev {n}\n"})
    assert count() == before


def test_the_editor_tells_what_production_runs_only_to_who_views_production(world, client):
    """Quality Assurance runs 0.3, Production 0.3 plus its own fix: the editor says so, to some."""
    url = reverse("lifecycle:editor", args=[world.module.pk, world.qa.pk])
    client.force_login(make_user("qa-only", {world.qa: AccessLevel.PUBLISH}))
    html = client.get(url).content.decode()
    assert "differs from" not in html and "Production" not in html

    client.force_login(
        make_user("qa-and-prod", {world.qa: AccessLevel.PUBLISH, world.prod: AccessLevel.VIEW})
    )
    assert "differs from" in client.get(url).content.decode()


def _merged(module, source_version, environment, files):
    """What merging `source_version` into `environment` writes (hotfixes.merging publishes so too)."""
    encoded = {path: text.encode() for path, text in files.items()}
    return publish(module, environment, encoded, merged_from=source_version).version


def test_a_merge_base_is_shown_as_the_base_of_a_comparison_and_nowhere_else(world, client):
    """The Production fix (v2) merged into Quality Assurance and into Development is their merge base.

    Whoever views both sees the comparison's changes since v2 (compare_file's base=), but not v2
    itself: no module page, download or version diff of it.
    """
    w = world
    released = f"# {w.module.name}\nprint('hello')\n"
    publish_files(w.module, w.dev, {"main.py": released, "new.py": "work\n"})  # v3
    fix = w.module.versions.get(number=2)
    assert _merged(w.module, fix, w.qa, {"main.py": SECRET + "\n"}).number == 4
    assert _merged(w.module, fix, w.dev, {"main.py": SECRET + "\n", "new.py": "work\n"}).number == 5
    qa_version, dev_version = 4, 5
    client.force_login(make_user("dev-and-qa", {w.dev: AccessLevel.VIEW, w.qa: AccessLevel.VIEW}))

    def compare_file(source, target, version, base):
        query = {
            "application": w.application.pk,
            "source": source.pk,
            "target": target.pk,
            "module": w.module.pk,
            "version": version,
            "base": base,
            "path": "main.py",
        }
        return client.get(f"{reverse('hotfixes:compare-file')}?{urlencode(query)}")

    compare = client.get(
        f"{reverse('hotfixes:compare')}?"
        + urlencode({"application": w.application.pk, "source": w.dev.pk, "target": w.qa.pk})
    )
    assert "merge base v2" in compare.content.decode()
    assert compare_file(w.dev, w.qa, dev_version, 2).status_code == 200
    assert compare_file(w.qa, w.dev, qa_version, 2).status_code == 200
    # Not the merge base of the two environments named: v2 stays hidden.
    assert compare_file(w.dev, w.dev, dev_version, 2).status_code == 404
    module_page = reverse("lifecycle:module", args=[w.module.pk, w.dev.pk])
    assert client.get(f"{module_page}?version=2").status_code == 404
    history = client.get(module_page).content.decode().split("Version history")[1]
    assert "+ merged from another environment" in history and "?version=2" not in history
    assert client.get(reverse("hotfixes:diff", args=[w.module.pk, 2, dev_version])).status_code == 404
    download = reverse("lifecycle:module-download", args=[w.module.pk, w.dev.pk, 2])
    assert client.get(download).status_code == 404


def test_a_hidden_version_answers_like_one_that_does_not_exist(world, client):
    user = _dev_only(world)
    client.force_login(user)
    hidden = client.get(reverse("hotfixes:diff", args=[world.module.pk, 1, 2]))
    missing = client.get(reverse("hotfixes:diff", args=[world.module.pk, 1, 99]))
    assert hidden.status_code == missing.status_code == 404
    token = {"Authorization": f"Bearer {create_token(user, 'ci')[1]}"}
    api_hidden = client.get(reverse("api:version-archive", args=[world.module.name, 2]), headers=token)
    api_missing = client.get(reverse("api:version-archive", args=[world.module.name, 99]), headers=token)
    assert api_hidden.status_code == api_missing.status_code == 404
    assert api_hidden.json()["code"] == api_missing.json()["code"] == "not_found"
    assert api_hidden.json()["detail"].replace("2", "N") == api_missing.json()["detail"].replace("99", "N")


# Item 10: every download is a private, uncached attachment whose name cannot break the header.

HOSTILE_NAMES = [
    'Evil "Cart"; filename=evil.exe',
    "Kärrn; «Warenkorb» 購物車",
    "line\nbreak\tand tab",
]


def _parsed_filename(header: str) -> tuple[str, list]:
    message = Message()
    message["Content-Disposition"] = header
    return message.get_filename(), message.get_params(header="Content-Disposition")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_download_is_a_private_attachment_named_safely(environments, client, viewer, name):
    application, _ = make_application("Hostile", module_names=())
    module = Module.objects.create(application=application, name=name)
    publish_files(module, environments[0], {"main.py": "x = 1\n"})
    client.force_login(viewer)
    token = {"Authorization": f"Bearer {create_token(viewer, 'ci')[1]}"}
    downloads = {
        "module page": client.get(
            reverse("lifecycle:module-download", args=[module.pk, environments[0].pk, 1])
        ),
        "API version archive": client.get(reverse("api:version-archive", args=[name, 1]), headers=token),
        "API environment archive": client.get(
            reverse("api:environment-archive", args=[name, "Development"]), headers=token
        ),
    }
    expected = name.replace("\n", "_").replace("\t", "_") + "-v1.zip"
    for way, response in downloads.items():
        assert response.status_code == 200, way
        assert response["Cache-Control"] == "private, no-store", way
        header = response["Content-Disposition"]
        filename, params = _parsed_filename(header)
        assert filename == expected, (way, header)
        # One disposition and one name: nothing in the module name added a parameter.
        assert params[0] == ("attachment", "") and len(params) == 2, (way, header)
        if not name.isascii():
            assert header.startswith("attachment; filename*=utf-8''"), (way, header)


# Item 28: the diff page single-spaced, and version links a screen reader can tell apart.


def test_the_diff_page_puts_each_line_on_one_line(world, client, viewer):
    released = f"# {world.module.name}\nprint('hello')\n"
    publish_files(world.module, world.dev, {"main.py": released + "print('more')\n"})  # v3
    client.force_login(viewer)
    html = client.get(reverse("hotfixes:diff", args=[world.module.pk, 1, 3])).content.decode()
    diff = re.search(r'<pre class="diff">(.*?)</pre>', html, re.S).group(1)
    # Hunk headers and changed lines are display:block: a newline after one renders an empty line.
    assert not re.search(r'<span class="diff-(hunk|add|del)">[^<]*</span>\s', diff)
    assert '<span class="diff-add">+print(&#x27;more&#x27;)</span>' in diff
    # Unchanged lines are inline: each ends with its own newline.
    assert "<span> print(&#x27;hello&#x27;)</span>\n" in diff


def test_each_version_link_says_module_version_and_environment(world, client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[world.application.pk])).content.decode()
    links = re.findall(r'<td class="module-version">\s*<a [^>]*>(.*?)</a>', html, re.S)
    names = [" ".join(re.sub(r"<[^>]+>", "", link).split()) for link in links]
    assert names == [
        "Shop-Cart v1 in Development",
        "Shop-Cart v1 in Quality Assurance",
        "Shop-Cart v1 in Pre-Production",
        "Shop-Cart v2 in Production",
    ]
