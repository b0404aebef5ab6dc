import pytest
from django.db.models import ProtectedError

from hotfixes.models import Hotfix
from lifecycle.models import (
    Blob,
    CurrentVersion,
    Environment,
    ImmutableError,
    ModuleChange,
    ModuleFile,
    ModuleVersion,
    TagMember,
)
from lifecycle.snapshots import content_hash, tree_hash
from lifecycle.tagging import TagError, tag_environment
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db


def test_it_stores_identical_content_once(environments):
    _, (cart, catalog) = make_application("Shop", ["Cart", "Catalog"])
    same = "def total():\n    return 0\n"
    publish_files(cart, environments[0], {"a.py": same, "b.py": same})
    publish_files(catalog, environments[0], {"c.py": same, "d.txt": "other"})
    assert Blob.objects.filter(hash=content_hash(same.encode())).count() == 1
    assert Blob.objects.count() == 2
    assert ModuleFile.objects.count() == 4


def test_it_numbers_versions_per_module_and_links_parents(environments):
    _, (cart,) = make_application("Shop", ["Cart"])
    first = publish_files(cart, environments[0], {"a.py": "1"})
    second = publish_files(cart, environments[0], {"a.py": "2"})
    assert (first.number, second.number) == (1, 2)
    assert second.parent == first
    assert first.parent is None
    assert CurrentVersion.objects.get(module=cart, environment=environments[0]).version == second
    assert ModuleChange.objects.filter(module=cart).count() == 2


def test_it_records_a_tree_hash_independent_of_file_order(environments):
    _, (cart,) = make_application("Shop", ["Cart"])
    version = publish_files(cart, environments[0], {"b.py": "b", "a.py": "a"})
    expected = tree_hash({"a.py": content_hash(b"a"), "b.py": content_hash(b"b")})
    assert version.tree_hash == expected
    assert version.manifest() == {"a.py": content_hash(b"a"), "b.py": content_hash(b"b")}


def test_it_keeps_binary_content_byte_for_byte(environments):
    _, (ui,) = make_application("Shop", ["UI"])
    png = bytes(range(256)) * 4
    version = publish_files(ui, environments[0], {"logo.png": png, "page.html": "<p>hi</p>"})
    blobs = {f.path: f.blob for f in version.files.select_related("blob")}
    assert bytes(blobs["logo.png"].data) == png
    assert blobs["logo.png"].is_binary
    assert not blobs["page.html"].is_binary


def test_it_refuses_to_change_or_delete_a_module_version(environments):
    _, (cart,) = make_application("Shop", ["Cart"])
    version = publish_files(cart, environments[0], {"a.py": "1"})
    version.comment = "rewritten history"
    with pytest.raises(ImmutableError):
        version.save()
    with pytest.raises(ImmutableError):
        version.delete()
    with pytest.raises(ImmutableError):
        ModuleVersion.objects.filter(pk=version.pk).update(comment="x")
    with pytest.raises(ImmutableError):
        ModuleVersion.objects.filter(pk=version.pk).delete()
    with pytest.raises(ImmutableError):
        ModuleFile.objects.filter(version=version).update(path="evil.py")
    with pytest.raises(ImmutableError):
        Blob.objects.all().delete()
    version.refresh_from_db()
    assert version.comment == ""


def test_it_refuses_to_change_tags_and_history(environments):
    application, _, tag = released_application("Shop", environments)
    with pytest.raises(ImmutableError):
        TagMember.objects.filter(tag=tag).delete()
    tag.notes = "changed"
    with pytest.raises(ImmutableError):
        tag.save()
    with pytest.raises(ImmutableError):
        ModuleChange.objects.all().update(comment="x")


def test_it_protects_an_environment_that_holds_modules(environments):
    released_application("Shop", environments)
    with pytest.raises(ProtectedError):
        environments[1].delete()
    assert Environment.objects.filter(pk=environments[1].pk).exists()


def test_it_deletes_an_empty_environment(environments):
    spare = Environment.objects.create(name="Sandbox", position=9)
    spare.delete()
    assert not Environment.objects.filter(name="Sandbox").exists()


def test_it_keeps_tag_numbers_unique_per_application(environments):
    application, _, tag = released_application("Shop", environments, number="0.3")
    with pytest.raises(TagError, match="0.3 is already taken"):
        tag_environment(application, environments[0], "0.3")
    with pytest.raises(TagError, match="same version as 0.3"):
        tag_environment(application, environments[0], "0.3.0")
    with pytest.raises(TagError, match="not a version number"):
        tag_environment(application, environments[0], "0.03")
    other, _, other_tag = released_application("Other", environments, number="0.3")
    assert other_tag.number == "0.3"


def test_it_refuses_to_tag_an_environment_without_modules(environments):
    application, _ = make_application("Empty", [])
    with pytest.raises(TagError, match="no modules"):
        tag_environment(application, environments[0], "0.1")


def test_it_opens_a_hotfix_only_outside_the_first_environment(environments):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "dev work"})
    assert not Hotfix.objects.exists()
    version = publish_files(core, environments[2], {"main.py": "fixed"})
    hotfix = Hotfix.objects.get()
    assert (hotfix.application, hotfix.environment, hotfix.is_open) == (application, environments[2], True)
    change = hotfix.changes.get()
    assert change.version == version
    assert change.replaced_version == version.parent
