import pytest
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import Blob, CurrentVersion, Draft, ModuleVersion
from lifecycle.tagging import tag_environment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db

CART = "class Cart:\n    def total(self):\n        return sum(self.prices)\n"


@pytest.fixture
def cart(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    publish_files(cart, environments[0], {"cart.py": CART, "README.md": "# Cart\n"})
    tag = tag_environment(application, environments[0], "0.4")
    for environment in environments[1:]:
        deploy_tag(tag, environment)
    return cart


def url(name, module, environment):
    return reverse(f"lifecycle:{name}", args=[module.pk, environment.pk])


def current(module, environment):
    return CurrentVersion.objects.get(module=module, environment=environment).version


def test_it_opens_a_draft_from_the_current_version(client, developer, environments, cart):
    client.force_login(developer)
    response = client.get(url("editor", cart, environments[0]), {"path": "cart.py"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "class Cart:" in html
    draft = Draft.objects.get()
    assert draft.base_version == current(cart, environments[0])


def test_it_edits_and_publishes_a_new_version(client, developer, environments, cart):
    dev = environments[0]
    before = current(cart, dev)
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    # Browsers send textareas with CRLF line endings; an LF file must stay LF.
    edited = CART.replace("sum(self.prices)", "sum(self.prices) * 2").replace("\n", "\r\n")
    response = client.post(url("editor-save", cart, dev), {"path": "cart.py", "content": edited})
    assert response.status_code == 302
    client.post(url("editor-add", cart, dev), {"path": "docs/notes.txt", "content": "notes"})
    client.post(url("editor-rename", cart, dev), {"path": "README.md", "new_path": "docs/README.md"})
    response = client.post(url("editor-publish", cart, dev), {"comment": "Double it"})
    assert response.status_code == 302

    after = current(cart, dev)
    assert after.number == before.number + 1
    assert after.parent == before
    assert after.comment == "Double it"
    assert after.created_by == developer
    files = {f.path: bytes(f.blob.data) for f in after.files.select_related("blob")}
    assert files == {
        "cart.py": CART.replace("sum(self.prices)", "sum(self.prices) * 2").encode(),
        "docs/notes.txt": b"notes",
        "docs/README.md": b"# Cart\n",
    }
    assert not Draft.objects.exists()
    assert not Hotfix.objects.exists()


def test_it_opens_a_hotfix_when_publishing_after_the_first_environment(client, developer, environments, cart):
    pre = environments[2]
    client.force_login(developer)
    client.get(url("editor", cart, pre))
    client.post(url("editor-save", cart, pre), {"path": "cart.py", "content": CART + "# fixed\n"})
    client.post(url("editor-publish", cart, pre), {"comment": "Fix"})
    hotfix = Hotfix.objects.get()
    assert hotfix.environment == pre
    assert hotfix.changes.get().version == current(cart, pre)
    page = client.get(reverse("lifecycle:pipeline")).content.decode()
    assert "hotfix" in page


def test_it_says_no_changes_and_creates_nothing(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    client.post(url("editor-save", cart, dev), {"path": "cart.py", "content": CART})
    versions = ModuleVersion.objects.count()
    response = client.post(url("editor-publish", cart, dev), {"comment": "nothing"}, follow=True)
    assert "No changes" in response.content.decode()
    assert ModuleVersion.objects.count() == versions


def test_it_refuses_a_stale_edit_and_keeps_the_draft(client, developer, release_manager, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    client.post(url("editor-save", cart, dev), {"path": "cart.py", "content": "my work\n"})
    publish_files(cart, dev, {"cart.py": "their work\n"}, user=release_manager)
    theirs = current(cart, dev)

    response = client.post(url("editor-publish", cart, dev), {"comment": "mine"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "release-manager made version" in html
    assert f"?version={theirs.number}" in html
    assert current(cart, dev) == theirs
    draft = Draft.objects.get()
    assert bytes(Blob.objects.get(hash=draft.manifest["cart.py"]).data) == b"my work\n"
    assert draft.comment == "mine"


def test_it_warns_when_the_environment_differs_from_production(client, developer, environments, cart):
    qa = environments[1]
    publish_files(cart, qa, {"cart.py": "qa only\n"})
    client.force_login(developer)
    html = client.get(url("editor", cart, qa)).content.decode()
    assert "differs from" in html and "Production" in html
    synced = client.get(url("editor", cart, environments[2])).content.decode()
    assert "differs from" not in synced


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("editor-add", {"path": "../escape.py", "content": "x"}, "leaves the module"),
        ("editor-add", {"path": "/etc/passwd", "content": "x"}, ""),
        ("editor-add", {"path": "CART.PY", "content": "x"}, "already exists"),
        ("editor-rename", {"path": "cart.py", "new_path": "readme.md"}, "already exists"),
        ("editor-rename", {"path": "nope.py", "new_path": "x.py"}, "not in your draft"),
        ("editor-delete", {"path": "nope.py"}, "not in your draft"),
        ("editor-save", {"path": "nope.py", "content": "x"}, "not in your draft"),
    ],
)
def test_it_refuses_bad_edits_with_a_message(client, developer, environments, cart, action, data, message):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    manifest = Draft.objects.get().manifest
    response = client.post(url(action, cart, dev), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert Draft.objects.get().manifest == manifest


def test_it_refuses_to_publish_an_empty_module(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    client.post(url("editor-delete", cart, dev), {"path": "cart.py"})
    client.post(url("editor-delete", cart, dev), {"path": "README.md"})
    versions = ModuleVersion.objects.count()
    response = client.post(url("editor-publish", cart, dev), {"comment": ""})
    assert response.status_code == 422
    assert ModuleVersion.objects.count() == versions


def test_it_refuses_editing_without_publish_access(client, viewer, developer, environments, cart):
    client.force_login(viewer)
    assert client.get(url("editor", cart, environments[0])).status_code == 403
    response = client.post(url("editor-publish", cart, environments[0]), {"comment": "x"})
    assert response.status_code == 403
    client.force_login(developer)
    assert client.get(url("editor", cart, environments[3])).status_code == 403
    assert not Draft.objects.exists()


def test_it_discards_a_draft(client, developer, environments, cart):
    client.force_login(developer)
    client.get(url("editor", cart, environments[0]))
    client.post(url("editor-discard", cart, environments[0]))
    assert not Draft.objects.exists()
