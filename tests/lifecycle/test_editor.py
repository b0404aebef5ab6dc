import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import Blob, CurrentVersion, Draft, ModuleVersion
from lifecycle.tagging import tag_environment
from tests.editor_forms import editor_fields
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


def send(client, name, module, environment, data, path=None):
    """Post an editor form as a browser does from a freshly loaded page (of `path`, for a file's forms)."""
    fields = editor_fields(client, module, environment, path)
    return client.post(url(name, module, environment), {**fields, **data})


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
    response = send(client, "editor-save", cart, dev, {"path": "cart.py", "content": edited}, "cart.py")
    assert response.status_code == 302
    send(client, "editor-add", cart, dev, {"path": "docs/notes.txt", "content": "notes"})
    send(client, "editor-rename", cart, dev, {"path": "README.md", "new_path": "docs/README.md"})
    response = send(client, "editor-publish", cart, dev, {"comment": "Double it"})
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
    send(client, "editor-save", cart, pre, {"path": "cart.py", "content": CART + "# fixed\n"}, "cart.py")
    send(client, "editor-publish", cart, pre, {"comment": "Fix"})
    hotfix = Hotfix.objects.get()
    assert hotfix.environment == pre
    assert hotfix.changes.get().version == current(cart, pre)
    page = client.get(reverse("lifecycle:pipeline")).content.decode()
    assert "hotfix" in page


def test_it_says_no_changes_and_creates_nothing(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    send(client, "editor-save", cart, dev, {"path": "cart.py", "content": CART}, "cart.py")
    versions = ModuleVersion.objects.count()
    fields = editor_fields(client, cart, dev)
    response = client.post(url("editor-publish", cart, dev), {**fields, "comment": "nothing"}, follow=True)
    assert "No changes" in response.content.decode()
    assert ModuleVersion.objects.count() == versions


def test_it_refuses_a_stale_edit_and_keeps_the_draft(client, developer, release_manager, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    send(client, "editor-save", cart, dev, {"path": "cart.py", "content": "my work\n"}, "cart.py")
    publish_files(cart, dev, {"cart.py": "their work\n"}, user=release_manager)
    theirs = current(cart, dev)

    response = send(client, "editor-publish", cart, dev, {"comment": "mine"})
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
    fields = editor_fields(client, cart, dev, "cart.py")
    manifest = Draft.objects.get().manifest
    response = client.post(url(action, cart, dev), {**fields, **data})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert Draft.objects.get().manifest == manifest


def test_it_refuses_to_publish_an_empty_module(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    client.get(url("editor", cart, dev))
    send(client, "editor-delete", cart, dev, {"path": "cart.py"}, "cart.py")
    send(client, "editor-delete", cart, dev, {"path": "README.md"}, "README.md")
    versions = ModuleVersion.objects.count()
    response = send(client, "editor-publish", cart, dev, {"comment": ""})
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
    send(client, "editor-discard", cart, environments[0], {})
    assert not Draft.objects.exists()


# Two tabs of one person: every form says which draft, revision and file content its page showed.


def file_in_draft(path):
    draft = Draft.objects.get()
    return bytes(Blob.objects.get(hash=draft.manifest[path]).data)


def files_of(version):
    return {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}


def test_two_tabs_saving_one_file_refuse_the_second_and_keep_its_text(client, developer, environments, cart):
    dev = environments[0]
    before = current(cart, dev)
    client.force_login(developer)
    tab_a = editor_fields(client, cart, dev, "cart.py")
    tab_b = editor_fields(client, cart, dev, "cart.py")

    save = url("editor-save", cart, dev)
    response = client.post(save, {**tab_a, "path": "cart.py", "content": "# A's edit\n"})
    assert response.status_code == 302
    response = client.post(save, {**tab_b, "path": "cart.py", "content": "# B's edit\n"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "cart.py was not saved." in html
    assert "was changed in your draft after this page was loaded" in html
    assert 'id="kept-text"' in html and "# B&#x27;s edit" in html  # B's text, to copy
    assert "# A&#x27;s edit" in html  # the draft as it is now, in the editor
    assert file_in_draft("cart.py") == b"# A's edit\n"

    # B's publish, from the page loaded before A's save, is refused too: it would publish unseen work.
    response = client.post(url("editor-publish", cart, dev), {**tab_b, "comment": "B's comment"})
    assert response.status_code == 409
    assert "B&#x27;s comment" in response.content.decode()
    assert current(cart, dev) == before

    # A, whose page reloaded after the save, publishes A's edit under A's comment.
    response = send(client, "editor-publish", cart, dev, {"comment": "A's comment"})
    assert response.status_code == 302
    after = current(cart, dev)
    assert after.comment == "A's comment"
    assert files_of(after)["cart.py"] == b"# A's edit\n"


def test_a_save_from_a_tab_opened_before_a_publish_is_refused(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    tab_b = editor_fields(client, cart, dev, "cart.py")
    # Tab A edits and publishes version 3.
    send(client, "editor-save", cart, dev, {"path": "cart.py", "content": CART + "# A\n"}, "cart.py")
    send(client, "editor-publish", cart, dev, {"comment": "A"})
    published = current(cart, dev)
    assert not Draft.objects.exists()

    response = client.post(
        url("editor-save", cart, dev), {**tab_b, "path": "cart.py", "content": "# B only\n"}
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "was published or discarded after this page was loaded" in html
    assert f"Cart v{published.number} is current there now" in html
    assert "# B only" in html and "open the editor again" in html
    # Refused, not quietly turned into a new draft from the new version.
    assert not Draft.objects.exists()

    response = client.post(url("editor-publish", cart, dev), {**tab_b, "comment": "B"})
    assert response.status_code == 409
    assert current(cart, dev) == published
    assert files_of(published)["cart.py"] == (CART + "# A\n").encode()


def test_a_tab_may_save_a_file_another_tab_did_not_touch(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    tab_a = editor_fields(client, cart, dev, "README.md")
    tab_b = editor_fields(client, cart, dev, "cart.py")
    save = url("editor-save", cart, dev)
    assert client.post(save, {**tab_a, "path": "README.md", "content": "# A\n"}).status_code == 302
    assert client.post(save, {**tab_b, "path": "cart.py", "content": "# B\n"}).status_code == 302
    assert file_in_draft("README.md") == b"# A\n" and file_in_draft("cart.py") == b"# B\n"
    assert Draft.objects.get().revision == 2


@pytest.mark.parametrize(
    ("action", "data", "refused"),
    [
        ("editor-delete", {"path": "cart.py"}, "The file was not deleted."),
        ("editor-discard", {}, "Your draft was not discarded."),
        ("editor-rename", {"path": "README.md", "new_path": "x.md"}, "The file was not renamed."),
    ],
)
def test_stale_deletes_renames_and_discards_are_refused(
    client, developer, environments, cart, action, data, refused
):
    dev = environments[0]
    client.force_login(developer)
    stale = editor_fields(client, cart, dev, "cart.py")
    # Another tab changes cart.py and renames README.md.
    send(client, "editor-save", cart, dev, {"path": "cart.py", "content": "# other tab\n"}, "cart.py")
    send(client, "editor-rename", cart, dev, {"path": "README.md", "new_path": "docs/README.md"})
    manifest = Draft.objects.get().manifest

    response = client.post(url(action, cart, dev), {**stale, **data})
    assert response.status_code == 409
    assert refused in response.content.decode()
    assert Draft.objects.get().manifest == manifest


@pytest.mark.parametrize("missing", ["draft", "revision", "from_hash"])
def test_a_form_that_does_not_say_what_it_was_made_from_is_refused(
    client, developer, environments, cart, missing
):
    dev = environments[0]
    client.force_login(developer)
    fields = editor_fields(client, cart, dev, "cart.py")
    del fields[missing]
    response = client.post(
        url("editor-save", cart, dev), {**fields, "path": "cart.py", "content": "# mine\n"}
    )
    assert response.status_code == 409
    assert "# mine" in response.content.decode()
    assert file_in_draft("cart.py") == CART.encode()


def test_every_change_of_the_draft_counts_a_revision(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    send(client, "editor-save", cart, dev, {"path": "cart.py", "content": "x\n"}, "cart.py")
    send(client, "editor-add", cart, dev, {"path": "new.py", "content": "y\n"})
    send(client, "editor-rename", cart, dev, {"path": "new.py", "new_path": "newer.py"})
    send(client, "editor-delete", cart, dev, {"path": "newer.py"}, "newer.py")
    assert Draft.objects.get().revision == 4


def test_the_domain_refuses_a_second_save_from_the_same_page(developer, environments, cart):
    from lifecycle.editing import StaleDraft, open_draft, save_text

    draft = open_draft(developer, cart, environments[0])
    page = {"revision": draft.revision, "from_hash": draft.manifest["cart.py"]}
    save_text(draft, "cart.py", "first\n", **page)
    with pytest.raises(StaleDraft):
        save_text(Draft.objects.get(pk=draft.pk), "cart.py", "second\n", **page)
    assert file_in_draft("cart.py") == b"first\n"


# Text that would not survive a textarea is never edited as text.

LATIN_1 = "caf\u00e9 = 1\n".encode("latin-1")
MIXED = b"first\r\nsecond\nthird\r\n"


@pytest.mark.parametrize(("data", "shown"), [(LATIN_1, "not UTF-8"), (MIXED, "mixed line endings")])
def test_a_file_a_textarea_would_change_is_offered_for_download_and_replacement(
    client, developer, environments, cart, data, shown
):
    dev = environments[0]
    publish_files(cart, dev, {"cart.py": CART, "odd.txt": data})
    client.force_login(developer)
    html = client.get(url("editor", cart, dev), {"path": "odd.txt"}).content.decode()
    assert shown in html and "cannot be edited here" in html
    assert 'id="file-content"' not in html
    assert "?download=odd.txt" in html

    download = client.get(url("editor", cart, dev), {"download": "odd.txt"})
    assert download.status_code == 200 and download.content == data
    assert download["Content-Disposition"] == 'attachment; filename="odd.txt"'
    assert download["Cache-Control"] == "private, no-store"

    # Text posted for it is refused: saving it would silently change its bytes.
    fields = editor_fields(client, cart, dev, "odd.txt")
    response = client.post(
        url("editor-save", cart, dev), {**fields, "path": "odd.txt", "content": "café = 1\r\n"}
    )
    assert response.status_code == 422
    assert "cannot be edited as text" in response.content.decode()
    assert file_in_draft("odd.txt") == data

    # Replacing it by upload keeps the bytes exactly.
    replacement = SimpleUploadedFile("odd.txt", b"\xff\xfe\x00new")
    response = client.post(
        url("editor-save", cart, dev), {**fields, "path": "odd.txt", "upload": replacement}
    )
    assert response.status_code == 302
    assert file_in_draft("odd.txt") == b"\xff\xfe\x00new"


def test_a_crlf_file_keeps_its_line_endings(client, developer, environments, cart):
    dev = environments[0]
    publish_files(cart, dev, {"cart.py": CART, "win.txt": b"one\r\ntwo\r\n"})
    client.force_login(developer)
    # What the browser sends back for the textarea: every line break as CRLF.
    send(
        client, "editor-save", cart, dev, {"path": "win.txt", "content": "one\r\ntwo\r\nthree\r\n"}, "win.txt"
    )
    assert file_in_draft("win.txt") == b"one\r\ntwo\r\nthree\r\n"


def test_it_refuses_text_whose_bytes_were_not_utf8(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    fields = editor_fields(client, cart, dev, "cart.py")
    # A client sent Latin-1 bytes; Django decodes the form with U+FFFD in their place.
    body = "&".join(f"{name}={value}" for name, value in fields.items()) + "&path=cart.py&content=caf%E9"
    response = client.post(
        url("editor-save", cart, dev), body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 422
    assert "were not UTF-8" in response.content.decode()
    assert file_in_draft("cart.py") == CART.encode()


def test_it_saves_a_three_megabyte_file(client, developer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    # Short lines of LF text: a browser sends each line break as CRLF, so the form is larger still.
    content = "x = 1\n" * (3 * 1024 * 1024 // 6)
    response = send(client, "editor-save", cart, dev, {"path": "cart.py", "content": content}, "cart.py")
    assert response.status_code == 302
    assert file_in_draft("cart.py") == content.encode()


def test_it_saves_a_file_at_the_limit_made_only_of_line_breaks(
    client, developer, environments, cart, settings
):
    from django.conf import settings as live

    dev = environments[0]
    client.force_login(developer)
    content = "\r\n" * live.MODULE_MAX_FILE_BYTES  # LF once saved: exactly the limit
    response = send(client, "editor-save", cart, dev, {"path": "cart.py", "content": content}, "cart.py")
    assert response.status_code == 302
    assert len(file_in_draft("cart.py")) == live.MODULE_MAX_FILE_BYTES


def test_it_refuses_a_file_over_the_limit_and_keeps_the_text(client, developer, environments, cart, settings):
    settings.MODULE_MAX_FILE_BYTES = 1000
    dev = environments[0]
    client.force_login(developer)
    response = send(client, "editor-save", cart, dev, {"path": "cart.py", "content": "y" * 1001}, "cart.py")
    assert response.status_code == 422
    html = response.content.decode()
    assert "over the limit of 1000 bytes per file" in html and "y" * 1001 in html


def test_it_downloads_only_files_of_the_users_own_draft(client, developer, viewer, environments, cart):
    dev = environments[0]
    client.force_login(developer)
    download = client.get(url("editor", cart, dev), {"download": "cart.py"})
    assert download.status_code == 200 and download.content == CART.encode()
    assert client.get(url("editor", cart, dev), {"download": "nope.py"}).status_code == 404
    client.force_login(viewer)
    assert client.get(url("editor", cart, dev), {"download": "cart.py"}).status_code == 403


def test_an_empty_file_can_be_uploaded_as_a_zip_may_hold_one(client, developer, environments, cart):
    """An empty __init__.py is common: refused by upload ("the submitted file is empty"), it could
    only be published in a zip."""
    dev = environments[0]
    client.force_login(developer)
    empty = SimpleUploadedFile("__init__.py", b"")
    response = send(client, "editor-add", cart, dev, {"path": "pkg/__init__.py", "upload": empty})
    assert response.status_code == 302
    replaced = SimpleUploadedFile("README.md", b"")
    response = send(client, "editor-save", cart, dev, {"path": "README.md", "upload": replaced}, "README.md")
    assert response.status_code == 302
    manifest = Draft.objects.get().manifest
    assert Blob.objects.get(hash=manifest["pkg/__init__.py"]).size == 0
    assert Blob.objects.get(hash=manifest["README.md"]).size == 0
