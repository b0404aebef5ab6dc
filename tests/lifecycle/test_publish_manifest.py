"""Publishing from a manifest (path -> content hash) plus the new contents: what merges publish.

Stored content is named by its hash and never read; the checks of any publish still hold, with
sizes taken from what is stored, and a hash that names nothing stored is refused.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifecycle.archives import ArchiveRejected
from lifecycle.models import Blob, CurrentVersion, ModuleFile, ModuleVersion
from lifecycle.publishing import publish
from lifecycle.snapshots import content_hash, tree_hash
from tests.factories import make_application, publish_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def module(environments):
    application, (module,) = make_application("Shop")
    publish_files(module, environments[0], {"a.py": "a = 1\n", "big.bin": b"\x00" * 3000, "docs/x.md": "x\n"})
    return module


def manifest_of(module, environment):
    version = CurrentVersion.objects.get(module=module, environment=environment).version
    return dict(ModuleFile.objects.filter(version=version).values_list("path", "blob_id"))


def written():
    return ModuleVersion.objects.count(), ModuleFile.objects.count(), Blob.objects.count()


def test_a_manifest_with_one_new_file_publishes_the_version_files_would(
    environments, module, release_manager
):
    dev = environments[0]
    manifest = {**manifest_of(module, dev), "a.py": content_hash(b"a = 2\n")}

    with CaptureQueriesContext(connection) as queries:
        result = publish(module, dev, manifest=manifest, blobs=[b"a = 2\n"], user=release_manager)

    assert result.created and result.version.number == 2
    assert result.version.tree_hash == tree_hash(manifest)
    assert result.version.total_size == len(b"a = 2\n") + 3000 + len(b"x\n")
    assert result.version.file_count == 3
    assert bytes(Blob.objects.get(hash=content_hash(b"a = 2\n")).data) == b"a = 2\n"
    # The stored contents were named, never read.
    assert not [q for q in queries if '"lifecycle_blob"."data"' in q["sql"]]


def test_a_hash_that_names_nothing_stored_is_refused_and_nothing_written(environments, module):
    dev = environments[0]
    before = written()
    manifest = {**manifest_of(module, dev), "new.py": content_hash(b"never sent\n")}

    with pytest.raises(ArchiveRejected) as refused:
        publish(module, dev, manifest=manifest, blobs=[b"something else\n"])

    assert refused.value.code == "unknown_content"
    assert "'new.py' names content" in str(refused.value) and "nothing was published" in str(refused.value)
    assert written() == before


@pytest.mark.parametrize("digest", ["../etc/passwd", "ABC", 42, None])
def test_a_manifest_value_that_is_not_a_content_hash_is_refused(environments, module, digest):
    before = written()
    with pytest.raises(ArchiveRejected) as refused:
        publish(module, environments[0], manifest={"a.py": digest})
    assert refused.value.code == "unknown_content"
    assert written() == before


def test_the_limits_count_the_stored_sizes(environments, module, settings):
    settings.MODULE_MAX_FILE_BYTES = 2000  # big.bin, stored, is 3,000 bytes
    before = written()
    manifest = manifest_of(module, environments[0])

    with pytest.raises(ArchiveRejected) as refused:
        publish(module, environments[0], manifest={**manifest, "a.py": content_hash(b"b\n")}, blobs=[b"b\n"])

    assert refused.value.code == "file_too_large" and "big.bin" in str(refused.value)
    assert written() == before


def test_unsafe_and_clashing_paths_are_refused_as_with_files(environments, module):
    digest = manifest_of(module, environments[0])["a.py"]
    for manifest, code in [
        ({"../a.py": digest}, "unsafe_path"),
        ({"a.py": digest, "A.py": digest}, "duplicate_path"),
        ({}, "empty"),
    ]:
        with pytest.raises(ArchiveRejected) as refused:
            publish(module, environments[0], manifest=manifest)
        assert refused.value.code == code


def test_a_stored_stageboard_json_moved_to_the_root_is_checked(environments, module):
    """The same bytes under another path were never parsed: at the root they are, read from storage."""
    dev = environments[0]
    bad = json.dumps({"uses": "Catalog"}).encode()  # not a list
    publish_files(module, dev, {"a.py": "a = 1\n", "docs/stageboard.json": bad})
    before = written()

    with pytest.raises(ArchiveRejected) as refused:
        publish(
            module, dev, manifest={"a.py": content_hash(b"a = 1\n"), "stageboard.json": content_hash(bad)}
        )

    assert refused.value.code == "invalid_dependencies"
    assert written() == before


def test_files_and_a_manifest_are_one_or_the_other(environments, module):
    with pytest.raises(TypeError):
        publish(module, environments[0], {"a.py": b"x"}, manifest={"a.py": content_hash(b"x")})
    with pytest.raises(TypeError):
        publish(module, environments[0])
