import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.models import Blob, ModuleChange, ModuleVersion
from tests.factories import released_application
from tests.zips import HOSTILE, hostile, make_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(environments):
    _, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    return cart


def upload(client, module, environment, data, comment="", name="module.zip"):
    return client.post(
        reverse("lifecycle:module-upload", args=[module.pk, environment.pk]),
        {"archive": SimpleUploadedFile(name, data, content_type="application/zip"), "comment": comment},
    )


def counts():
    return (
        ModuleVersion.objects.count(),
        Blob.objects.count(),
        ModuleChange.objects.count(),
        Hotfix.objects.count(),
    )


def test_it_publishes_a_zip(client, developer, environments, cart):
    png = bytes(range(256))
    client.force_login(developer)
    response = upload(
        client, cart, environments[0], make_zip({"cart.py": "x = 1\n", "img/logo.png": png}), "Zip"
    )
    assert response.status_code == 302
    version = ModuleVersion.objects.filter(module=cart).latest("number")
    assert version.number == 2 and version.comment == "Zip" and version.created_by == developer
    files = {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}
    assert files == {"cart.py": b"x = 1\n", "img/logo.png": png}
    download = client.get(reverse("lifecycle:module-download", args=[cart.pk, environments[0].pk, 2]))
    assert make_zip(files) != b"" and download.status_code == 200
    import io
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(download.content)).read("img/logo.png") == png


def test_it_says_no_changes_for_the_same_zip(client, developer, environments, cart):
    client.force_login(developer)
    data = make_zip({"cart.py": "x = 1\n"})
    upload(client, cart, environments[0], data)
    before = counts()
    response = client.get(reverse("lifecycle:module", args=[cart.pk, environments[0].pk]))
    response = upload(client, cart, environments[0], data)
    page = client.get(response.url).content.decode()
    assert "No changes" in page
    assert counts() == before


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_it_refuses_a_hostile_zip_and_writes_nothing(client, developer, environments, cart, case, settings):
    settings.MODULE_MAX_TOTAL_BYTES = 10 * 1024 * 1024
    data, code = hostile(case)
    client.force_login(developer)
    before = counts()
    response = upload(client, cart, environments[2], data)
    assert response.status_code == 422
    assert "nothing was published" in response.content.decode().lower()
    assert counts() == before


def test_it_refuses_more_files_than_the_limit(client, developer, environments, cart, settings):
    settings.MODULE_MAX_FILES = 3
    client.force_login(developer)
    before = counts()
    response = upload(client, cart, environments[0], make_zip({f"f{n}.py": "x" for n in range(4)}))
    assert response.status_code == 422
    assert counts() == before


def test_it_refuses_a_file_over_the_size_limit(client, developer, environments, cart, settings):
    settings.MODULE_MAX_FILE_BYTES = 1000
    client.force_login(developer)
    response = upload(client, cart, environments[0], make_zip({"big.bin": b"\x01\x02" * 600}))
    assert response.status_code == 422
    assert "big.bin" in response.content.decode()


def test_it_refuses_an_upload_over_the_archive_limit(client, developer, environments, cart, settings):
    settings.MODULE_MAX_ARCHIVE_BYTES = 100
    client.force_login(developer)
    before = counts()
    response = upload(client, cart, environments[0], make_zip({"a.py": bytes(range(256)) * 4}))
    assert response.status_code == 422
    assert counts() == before


def test_it_refuses_an_upload_without_publish_access(client, viewer, developer, environments, cart):
    data = make_zip({"cart.py": "x = 1\n"})
    before = counts()
    client.force_login(viewer)
    assert upload(client, cart, environments[0], data).status_code == 403
    client.force_login(developer)
    assert upload(client, cart, environments[3], data).status_code == 403
    assert counts() == before


def test_it_opens_a_hotfix_for_a_zip_published_after_the_first_environment(
    client, developer, environments, cart
):
    client.force_login(developer)
    upload(client, cart, environments[1], make_zip({"main.py": "fixed\n"}))
    assert Hotfix.objects.get().environment == environments[1]
