"""The four ways to publish store the same content as the same version, and refuse the same content."""

import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from lifecycle.models import Blob, CurrentVersion, Draft, ModuleVersion
from lifecycle.tokens import create_token
from tests.editor_forms import editor_fields
from tests.factories import make_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

FILES = {"cart.py": b"def total(lines):\n    return sum(lines)\n", "img/logo.png": bytes(range(256)) * 3}


def version_in(module, environment):
    return CurrentVersion.objects.get(module=module, environment=environment).version


def test_it_stores_the_same_version_whichever_way_it_is_published(client, tmp_path, developer, environments):
    dev = environments[0]
    _, (by_editor, by_zip, by_cli, by_api) = make_application("Shop", ["Editor", "Zip", "Cli", "Api"])
    client.force_login(developer)

    # The browser editor: an empty module, two files added (one text, one uploaded binary).
    add = reverse("lifecycle:editor-add", args=[by_editor.pk, dev.pk])
    text = FILES["cart.py"].decode().replace("\n", "\r\n")
    client.post(add, {**editor_fields(client, by_editor, dev), "path": "cart.py", "content": text})
    logo = SimpleUploadedFile("logo.png", FILES["img/logo.png"])
    client.post(add, {**editor_fields(client, by_editor, dev), "path": "img/logo.png", "upload": logo})
    client.post(
        reverse("lifecycle:editor-publish", args=[by_editor.pk, dev.pk]),
        {**editor_fields(client, by_editor, dev), "comment": "editor"},
    )

    # A zip uploaded in the browser.
    client.post(
        reverse("lifecycle:module-upload", args=[by_zip.pk, dev.pk]),
        {"archive": SimpleUploadedFile("m.zip", make_zip(FILES)), "comment": "zip"},
    )

    # The command line, from a folder.
    folder = tmp_path / "module"
    (folder / "img").mkdir(parents=True)
    for path, data in FILES.items():
        (folder / path).write_bytes(data)
    call_command("publish", dev.name, by_cli.name, str(folder), "--user", developer.username)

    # The JSON API.
    _, token = create_token(developer, "ci")
    response = client.post(
        f"/api/v1/modules/{by_api.name}/environments/{dev.name}/versions",
        data=make_zip(FILES),
        content_type="application/zip",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201

    versions = [version_in(module, dev) for module in (by_editor, by_zip, by_cli, by_api)]
    assert len({version.tree_hash for version in versions}) == 1
    assert all(version.number == 1 and version.created_by == developer for version in versions)
    assert Blob.objects.count() == 2
    assert ModuleVersion.objects.count() == 4


# Content every way of publishing refuses: paths that do not check out everywhere, a malformed
# stageboard.json. Each way answers with a message naming the problem, and writes nothing.

REFUSED = [
    pytest.param({"aux.txt": b"x"}, "reserves for the device AUX", id="reserved-name"),
    pytest.param({"notes.txt.": b"x"}, "ending in a dot", id="trailing-dot"),
    pytest.param({"src /main.py": b"x"}, "ending in a space", id="trailing-space-folder"),
    pytest.param({"\ufeffmain.py": b"x"}, "U+FEFF", id="byte-order-mark"),
    pytest.param({"ma\u200bin.py": b"x"}, "U+200B ZERO WIDTH SPACE", id="zero-width"),
    pytest.param({"why?.py": b"x"}, "a character Windows does not allow", id="forbidden-character"),
    pytest.param({"stageboard.json": b'{"uses": 5}'}, 'must give "uses" as a list', id="uses-a-number"),
    pytest.param({"stageboard.json": b'{"uses": null}'}, "not null", id="uses-null"),
    pytest.param({"stageboard.json": b'{"uses": [1]}'}, "lists a number (1)", id="uses-a-list-of-numbers"),
    pytest.param({"stageboard.json": b"[" * 50_000 + b"]" * 50_000}, "over the limit of 64 KB", id="too-big"),
    pytest.param({"stageboard.json": b"[" * 20_000 + b"]" * 20_000}, "too deeply", id="deeply-nested"),
]


@pytest.fixture
def shop(environments):
    return make_application("Shop", ["Cart"])[1][0]


def nothing_written():
    return not ModuleVersion.objects.exists()


@pytest.mark.parametrize(("bad", "reason"), REFUSED)
def test_a_zip_upload_refuses_it(client, developer, environments, shop, bad, reason):
    client.force_login(developer)
    response = client.post(
        reverse("lifecycle:module-upload", args=[shop.pk, environments[0].pk]),
        {"archive": SimpleUploadedFile("m.zip", make_zip({"main.py": b"x", **bad}))},
    )
    assert response.status_code == 422
    assert reason in html.unescape(response.content.decode())
    assert nothing_written()


@pytest.mark.parametrize(("bad", "reason"), REFUSED)
def test_the_api_refuses_it(client, developer, environments, shop, bad, reason):
    _, token = create_token(developer, "ci")
    response = client.post(
        f"/api/v1/modules/{shop.name}/environments/{environments[0].name}/versions",
        data=make_zip({"main.py": b"x", **bad}),
        content_type="application/zip",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert nothing_written()


@pytest.mark.parametrize(("bad", "reason"), REFUSED)
def test_the_command_line_refuses_it(tmp_path, developer, environments, shop, bad, reason):
    folder = tmp_path / "module"
    for path, data in {"main.py": b"x", **bad}.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    with pytest.raises(CommandError) as refused:
        call_command("publish", environments[0].name, shop.name, str(folder), "--user", developer.username)
    assert reason in str(refused.value)
    assert nothing_written()


@pytest.mark.parametrize(("bad", "reason"), REFUSED)
def test_the_editor_refuses_it(client, developer, environments, shop, bad, reason):
    dev = environments[0]
    client.force_login(developer)
    add = reverse("lifecycle:editor-add", args=[shop.pk, dev.pk])
    ((path, data),) = bad.items()
    response = client.post(
        add, {**editor_fields(client, shop, dev), "path": path, "upload": SimpleUploadedFile("f", data)}
    )
    if path != "stageboard.json":
        # A bad name is refused as soon as it is added or renamed to.
        assert response.status_code == 422
        assert reason in html.unescape(response.content.decode())
        client.post(add, {**editor_fields(client, shop, dev), "path": "main.py", "content": "x"})
        fields = editor_fields(client, shop, dev, "main.py")
        rename = reverse("lifecycle:editor-rename", args=[shop.pk, dev.pk])
        response = client.post(rename, {**fields, "path": "main.py", "new_path": path})
        assert response.status_code == 422
        assert reason in html.unescape(response.content.decode())
        assert list(Draft.objects.get().manifest) == ["main.py"]
    else:
        # The draft may hold it while it is being written; publishing it is refused.
        assert response.status_code == 302
        publish = reverse("lifecycle:editor-publish", args=[shop.pk, dev.pk])
        response = client.post(publish, {**editor_fields(client, shop, dev), "comment": ""})
        assert response.status_code == 422
        assert reason in html.unescape(response.content.decode())
        assert Draft.objects.exists()
    assert nothing_written()
