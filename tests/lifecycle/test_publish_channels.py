"""The four ways to publish store the same content as the same version."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from lifecycle.models import Blob, CurrentVersion, ModuleVersion
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
