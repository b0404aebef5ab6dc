import io
import zipfile

import pytest
from django.core.management import CommandError, call_command

from lifecycle.models import ModuleVersion
from tests.factories import released_application
from tests.zips import make_zip, symlink_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(environments):
    _, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    return cart


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_publishes_a_folder_and_a_zip(tmp_path, developer, environments, cart):
    folder = tmp_path / "module"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "cart.py").write_text("x = 1\n")
    (folder / "logo.png").write_bytes(bytes(range(256)))
    assert "Published Shop-Cart v2 to Development." in run(
        "publish", "Development", "Shop-Cart", str(folder), "--user", "developer", "--comment", "CLI"
    )
    archive = tmp_path / "module.zip"
    archive.write_bytes(make_zip({"pkg/cart.py": "x = 1\n", "logo.png": bytes(range(256))}))
    assert "No changes" in run("publish", "Development", "Shop-Cart", str(archive), "--user", "developer")
    version = ModuleVersion.objects.get(module=cart, number=2)
    assert version.comment == "CLI" and version.created_by == developer


def test_it_downloads_to_a_zip_and_a_folder(tmp_path, viewer, environments, cart):
    run("download", "Production", "Shop-Cart", str(tmp_path / "out.zip"), "--user", "viewer")
    assert zipfile.ZipFile(tmp_path / "out.zip").read("main.py").startswith(b"# Shop-Cart")
    run("download", "Production", "Shop-Cart", str(tmp_path / "out"), "--user", "viewer", "--version", "1")
    assert (tmp_path / "out" / "main.py").read_bytes().startswith(b"# Shop-Cart")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["publish", "Nowhere", "Shop-Cart", "{zip}", "--user", "developer"], 4),
        (["publish", "Development", "Nothing", "{zip}", "--user", "developer"], 4),
        (["publish", "Development", "Shop-Cart", "{zip}", "--user", "nobody"], 4),
        (["publish", "Production", "Shop-Cart", "{zip}", "--user", "developer"], 3),
        (["publish", "Development", "Shop-Cart", "{zip}", "--user", "viewer"], 3),
        (["publish", "Development", "Shop-Cart", "{bad}", "--user", "developer"], 2),
        (["publish", "Development", "Shop-Cart", "{symlink}", "--user", "developer"], 2),
        (["publish", "Development", "Shop-Cart", "{missing}", "--user", "developer"], 2),
        (["publish", "Development", "Shop-Cart", "{zip}", "--user", "developer", "--base-version", "7"], 2),
        (["download", "Development", "Shop-Cart", "{out}", "--user", "outsider"], 3),
        (["download", "Development", "Shop-Cart", "{out}", "--user", "viewer", "--version", "9"], 4),
        # A comment the browser and the API refuse too: over 2000 characters, or that cannot be
        # stored. A terminal that is not UTF-8 hands Python 'café' as 'caf\udce9' (surrogateescape).
        (["publish", "Development", "Shop-Cart", "{zip}", "--user", "developer", "--comment", "x" * 2001], 2),
        (
            ["publish", "Development", "Shop-Cart", "{zip}", "--user", "developer", "--comment", "caf\udce9"],
            2,
        ),
        (["publish", "Development", "Shop-Cart", "{zip}", "--user", "developer", "--comment", "a\x00b"], 2),
        (["publish", "D\udce9v", "Shop-Cart", "{zip}", "--user", "developer"], 4),
        (["publish", "Development", "Shop-Cart\x00", "{zip}", "--user", "developer"], 4),
        (["download", "Development", "Shop-Cart", "{out}", "--user", "vi\udce9wer"], 4),
    ],
)
def test_it_exits_with_codes_scripts_can_rely_on(tmp_path, viewer, developer, outsider, cart, args, code):
    paths = {
        "zip": tmp_path / "ok.zip",
        "bad": tmp_path / "bad.zip",
        "symlink": tmp_path / "link.zip",
        "missing": tmp_path / "missing",
        "out": tmp_path / "out.zip",
    }
    paths["zip"].write_bytes(make_zip({"a.py": "x\n"}))
    paths["bad"].write_bytes(b"not a zip")
    paths["symlink"].write_bytes(symlink_zip())
    before = ModuleVersion.objects.count()
    with pytest.raises(CommandError) as error:
        call_command(*[a.format(**paths) for a in args])
    assert error.value.returncode == code
    assert ModuleVersion.objects.count() == before


def test_it_refuses_a_stale_base_version(tmp_path, developer, environments, cart):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.py": "one\n"}))
    run("publish", "Development", "Shop-Cart", str(archive), "--user", "developer")
    archive.write_bytes(make_zip({"a.py": "two\n"}))
    with pytest.raises(CommandError) as error:
        call_command(
            "publish", "Development", "Shop-Cart", str(archive), "--user", "developer", "--base-version", "1"
        )
    assert error.value.returncode == 5
    assert "Published" in run(
        "publish", "Development", "Shop-Cart", str(archive), "--user", "developer", "--base-version", "2"
    )


def test_it_refuses_a_folder_with_a_symlink(tmp_path, developer, environments, cart):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.py").write_text("x")
    (folder / "link").symlink_to("/etc/passwd")
    with pytest.raises(CommandError) as error:
        call_command("publish", "Development", "Shop-Cart", str(folder), "--user", "developer")
    assert error.value.returncode == 2
