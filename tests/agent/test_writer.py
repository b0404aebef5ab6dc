"""The agent's writer: releases on disk, and what it refuses from the server or finds planted under DIR.

Every hostile case first delivers a good release, then offers the hostile one:
it must be refused for the reason given, leave nothing behind (no file outside
DIR, no half-written release) and leave the good release current.
"""

import io
import json
import os
import stat
import zipfile

import pytest

from tests.agent.agent_double import Source, desired, make_agent, manifest_of, sa, sha, zip_of

GOOD = {"main.py": b"print('v1')\n", "pkg/util.py": b"def util(): pass\n"}


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path):
    """A folder next to DIR that nothing may write into or read from."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "keep.txt").write_bytes(b"untouched")
    return path


@pytest.fixture
def agent(root):
    agent = make_agent(root)
    yield agent
    agent.close()


@pytest.fixture
def source():
    return Source()


def listing(path):
    """Every file and link under `path` with its content (links by their target), to show nothing changed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            relative = os.path.relpath(full, path)
            if os.path.islink(full):
                found[relative] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    found[relative] = handle.read()
    return found


def current_of(root, application="Shop"):
    return os.readlink(root / application / "current")


def releases_of(root, application="Shop"):
    return sorted(os.listdir(root / application / "releases"))


def deliver_good(agent, source, version="1.0", files=GOOD):
    app = desired("Shop", version, [source.add("Shop-Core", 1, files)])
    assert agent.apply(app, "Production", source), agent.lines
    return app


def assert_refused(agent, root, outside, before, reason):
    """The refusal gave `reason`, and the first release is still the only one, current."""
    notes = agent.state["applications"]["Shop"]["unreported_log"]
    assert any("not applied" in line and reason in line for line in notes), notes
    assert listing(outside) == {"keep.txt": b"untouched"}
    assert listing(root / "Shop") == before
    assert not [p for p in root.parent.rglob("*evil*")]


# ---------------------------------------------------------------------------
# The layout


def test_it_writes_the_release_and_points_current_at_it(agent, source, root):
    deliver_good(agent, source)
    modules = {"Shop-Core": sa.tree_hash({path: sha(data) for path, data in GOOD.items()})}
    name = sa.release_name("1.0", modules)
    assert name == f"1.0-{sa.combined_hash(modules)[:8]}"
    assert current_of(root) == f"releases/{name}"
    release = root / "Shop" / "releases" / name / "Shop-Core"
    assert (release / "main.py").read_bytes() == GOOD["main.py"]
    assert (release / "pkg" / "util.py").read_bytes() == GOOD["pkg/util.py"]
    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == GOOD["main.py"]
    state = json.loads((root / ".stageboard-agent.json").read_text())
    assert state["applications"]["Shop"]["applied"] == modules
    assert state["applications"]["Shop"]["release"] == name
    assert sorted(os.listdir(root / "Shop")) == ["current", "releases"]


def test_an_unchanged_module_is_copied_from_the_current_release_not_downloaded(agent, source, root):
    core = source.add("Shop-Core", 1, GOOD)
    extra = source.add("Shop-Extra", 1, {"extra.py": b"1\n"})
    assert agent.apply(desired("Shop", "1.0", [core, extra]), "Production", source)
    source.requests.clear()

    extra2 = source.add("Shop-Extra", 2, {"extra.py": b"2\n"})
    assert agent.apply(desired("Shop", "1.1", [core, extra2]), "Production", source)

    assert source.requests == [("manifest", "Shop-Extra", 2), ("archive", "Shop-Extra", 2)]
    assert (root / "Shop" / "current" / "Shop-Core" / "pkg" / "util.py").read_bytes() == GOOD["pkg/util.py"]
    assert (root / "Shop" / "current" / "Shop-Extra" / "extra.py").read_bytes() == b"2\n"
    assert len(releases_of(root)) == 2


def test_an_application_whose_desired_state_is_what_it_applied_is_left_alone(agent, source, root):
    app = deliver_good(agent, source)
    source.requests.clear()
    before = listing(root / "Shop")
    assert agent.apply(app, "Production", source)
    assert source.requests == []
    assert listing(root / "Shop") == before


def test_a_new_version_label_alone_writes_no_release_and_runs_no_hook(agent, source, root):
    """The same files tagged under a new number: taken as it is, nothing restarted for no change."""
    app = deliver_good(agent, source)
    source.requests.clear()
    before = listing(root / "Shop")
    assert agent.apply(dict(app, version="9.9.9", deployment=None), "Production", source)
    assert source.requests == [] and listing(root / "Shop") == before
    record = agent.state["applications"]["Shop"]
    assert record["version"] == "9.9.9" and record["deployment"] is None


def test_a_module_edited_on_disk_is_kept_as_found_while_its_desired_files_are_unchanged(agent, source, root):
    # A new release for another reason (here a new version label; adopting another module's drift in
    # Stageboard) keeps the edit: it is drift nobody decided about yet, and stays reported as such.
    core = source.add("Shop-Core", 1, GOOD)
    assert agent.apply(desired("Shop", "1.0", [core]), "Production", source)
    (root / "Shop" / "current" / "Shop-Core" / "main.py").write_bytes(b"edited on the server\n")
    source.requests.clear()

    assert agent.apply(desired("Shop", "1.0+", [core]), "Production", source)

    assert ("archive", "Shop-Core", 1) not in source.requests
    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == b"edited on the server\n"


def test_a_new_version_is_not_logged_as_differing_on_disk(agent, source, root):
    # The deployment's log would read as drift on every ordinary deployment.
    core = source.add("Shop-Core", 1, GOOD)
    assert agent.apply(desired("Shop", "1.0", [core]), "Production", source)
    agent.state["applications"]["Shop"]["unreported_log"] = []
    newer = source.add("Shop-Core", 2, dict(GOOD, **{"main.py": b"print('v2')\n"}))

    assert agent.apply(desired("Shop", "1.1", [newer]), "Production", source)

    notes = agent.state["applications"]["Shop"]["unreported_log"]
    assert "downloaded Shop-Core v2 (2 files)" in notes
    assert not [line for line in notes if "differs" in line], notes


def test_a_module_edited_on_disk_is_replaced_by_a_new_version_of_it(agent, source, root):
    core = source.add("Shop-Core", 1, GOOD)
    assert agent.apply(desired("Shop", "1.0", [core]), "Production", source)
    (root / "Shop" / "current" / "Shop-Core" / "main.py").write_bytes(b"edited on the server\n")
    newer = source.add("Shop-Core", 2, dict(GOOD, **{"main.py": b"print('v2')\n"}))

    assert agent.apply(desired("Shop", "1.1", [newer]), "Production", source)

    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == b"print('v2')\n"


def test_a_new_generation_writes_a_fresh_release_of_the_same_content(agent, source, root):
    app = deliver_good(agent, source)
    first = current_of(root)
    (root / "Shop" / "current" / "Shop-Core" / "main.py").write_bytes(b"drift\n")

    assert agent.apply(dict(app, generation=1), "Production", source)

    assert current_of(root) == first + ".2"
    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == GOOD["main.py"]
    # The drifted release is kept as it was: it may be what someone wants to adopt.
    assert (root / "Shop" / first / "Shop-Core" / "main.py").read_bytes() == b"drift\n"


def test_it_keeps_the_last_five_releases(agent, source, root):
    names = []
    for number in range(1, 8):
        deliver_good(agent, source, version=f"1.{number}", files={"main.py": f"v{number}\n".encode()})
        names.append(current_of(root).split("/", 1)[1])
    assert releases_of(root) == sorted(names[2:])
    assert current_of(root) == f"releases/{names[-1]}"
    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == b"v7\n"


def test_retention_never_deletes_the_release_current_points_to(agent, source, root):
    names = []
    for number in range(1, 7):
        deliver_good(agent, source, version=f"1.{number}", files={"main.py": f"v{number}\n".encode()})
        names.append(current_of(root).split("/", 1)[1])
    # Current is made the oldest of six releases (an operator switched back by hand, say).
    assert len(releases_of(root)) == 5
    oldest = names[1]
    os.utime(root / "Shop" / "releases" / oldest, ns=(1, 1))
    extra = root / "Shop" / "releases" / "9.9-00000000"
    extra.mkdir()
    with agent.root.open_dir("Shop") as app_dir, app_dir.open_dir("releases") as releases:
        agent._prune(releases, oldest, {})
    assert oldest in releases_of(root)
    assert len(releases_of(root)) == 6  # the five newest, and current


def test_the_switch_renames_a_new_link_over_current(agent, source, root, monkeypatch):
    deliver_good(agent, source)
    first = current_of(root)
    seen = []
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if dst == "current":
            # At the moment of the switch the old link is still whole and the new one exists beside it.
            seen.append((os.readlink(root / "Shop" / "current"), os.readlink(root / "Shop" / src)))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(sa.os, "replace", replace)
    deliver_good(agent, source, version="2.0", files={"main.py": b"v2\n"})
    assert seen == [(first, current_of(root))]
    assert sorted(os.listdir(root / "Shop")) == ["current", "releases"]


def test_the_state_file_is_replaced_whole(agent, source, root, monkeypatch):
    deliver_good(agent, source)
    assert not [name for name in os.listdir(root) if name.endswith(".tmp")]
    assert stat.S_IMODE(os.stat(root / ".stageboard-agent.json").st_mode) == 0o600


# ---------------------------------------------------------------------------
# Hostile manifests


def _climbing(outside):
    return [
        ("../evil.txt", "climbs folders"),
        ("a/../../evil.txt", "climbs folders"),
        (str(outside / "evil.txt"), "absolute path"),
        ("a\\..\\..\\evil.txt", "backslash"),
        ("evil\x00.txt", "control character"),
        ("C:/evil.txt", "drive letter"),
        ("a//evil.txt", "is empty"),
        ("./evil.txt", "climbs folders"),
        ("evil/", "is empty"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_a_manifest_path_that_leaves_the_module_is_refused(agent, source, root, outside, case):
    path, reason = _climbing(outside)[case]
    deliver_good(agent, source)
    before = listing(root / "Shop")
    files = {"main.py": b"fine\n", path: b"evil\n"}
    app = desired("Shop", "2.0", [source.add("Shop-Core", 2, files)])
    assert not agent.apply(app, "Production", source)
    assert_refused(agent, root, outside, before, reason)


def _manifests():
    files = {"main.py": b"print(2)\n", "lib/a.py": b"a\n"}

    def changed(**changes):
        return dict(manifest_of("Shop-Core", 2, files), **changes)

    entries = manifest_of("Shop-Core", 2, files)["files"]
    clash = {"lib": b"a file\n", "lib/a.py": b"a\n"}
    return [
        ("twice", files, changed(files=entries + entries[:1]), "twice"),
        ("file and folder", clash, manifest_of("Shop-Core", 2, clash), "both as a file and as a folder"),
        ("another module", files, changed(module="Other"), "describes 'Other'"),
        ("another version", files, changed(version=1), "v1"),
        ("no list", files, changed(files={"main.py": "x"}), "no list of files"),
        ("bad sha", files, changed(files=[dict(entries[0], sha256="XYZ"), entries[1]]), "no SHA-256"),
        ("negative size", files, changed(files=[dict(entries[0], size=-1), entries[1]]), "no size"),
        ("not an object", files, ["main.py"], "not a JSON object"),
    ]


@pytest.mark.parametrize("case", range(8), ids=[case[0] for case in _manifests()])
def test_a_malformed_manifest_is_refused(agent, source, root, outside, case):
    _, files, manifest, reason = _manifests()[case]
    deliver_good(agent, source)
    before = listing(root / "Shop")
    tree = sa.tree_hash({path: sha(data) for path, data in files.items()})
    source.served[("Shop-Core", 2)] = (manifest, zip_of(files.items()))
    app = desired("Shop", "2.0", [{"name": "Shop-Core", "version": 2, "tree_hash": tree}])
    assert not agent.apply(app, "Production", source)
    assert_refused(agent, root, outside, before, reason)


def test_a_manifest_that_does_not_hash_to_the_desired_tree_hash_is_refused(agent, source, root, outside):
    deliver_good(agent, source)
    before = listing(root / "Shop")
    entry = source.add("Shop-Core", 2, {"main.py": b"served\n"})
    app = desired("Shop", "2.0", [dict(entry, tree_hash=sa.tree_hash({"main.py": sha(b"wanted\n")}))])
    assert not agent.apply(app, "Production", source)
    assert_refused(agent, root, outside, before, "does not hash to the tree hash of the desired state")


# ---------------------------------------------------------------------------
# Hostile archives


def _archives():
    manifest_files = {"main.py": b"print(2)\n", "lib/a.py": b"a\n"}
    link = stat.S_IFLNK | 0o777
    return [
        ("symlink entry", {"main.py": b"/etc/passwd"}, [("main.py", b"/etc/passwd", link)], "as a symlink"),
        (
            "extra entry",
            manifest_files,
            [*manifest_files.items(), ("../evil.txt", b"x")],
            "not in the manifest",
        ),
        ("missing entry", manifest_files, [("main.py", manifest_files["main.py"])], "manifest missing"),
        ("hash mismatch", manifest_files, [("main.py", b"print(3)\n"), ("lib/a.py", b"a\n")], "SHA-256"),
        (
            "size mismatch",
            manifest_files,
            [("main.py", b"print(33)\n"), ("lib/a.py", b"a\n")],
            "another size",
        ),
        ("twice", manifest_files, [*manifest_files.items(), ("main.py", b"x\n")], "twice"),
        (
            "stray folder",
            manifest_files,
            [*manifest_files.items(), ("evil/", b"", stat.S_IFDIR | 0o755)],
            "not a",
        ),
        (
            "fifo entry",
            manifest_files,
            [("main.py", b"", stat.S_IFIFO | 0o644), ("lib/a.py", b"a\n")],
            "not a",
        ),
        ("not a zip", manifest_files, None, "not a readable zip"),
    ]


@pytest.mark.parametrize("case", range(9), ids=[case[0] for case in _archives()])
def test_an_archive_that_differs_from_its_manifest_is_refused(agent, source, root, outside, case):
    _, files, entries, reason = _archives()[case]
    deliver_good(agent, source)
    before = listing(root / "Shop")
    archive = b"PK\x03\x04 not really" if entries is None else zip_of(entries)
    app = desired("Shop", "2.0", [source.add("Shop-Core", 2, files, archive=archive)])
    assert not agent.apply(app, "Production", source)
    assert_refused(agent, root, outside, before, reason)


def test_a_refused_module_leaves_the_good_ones_unwritten_too(agent, source, root, outside):
    deliver_good(agent, source)
    before = listing(root / "Shop")
    good = source.add("Shop-Extra", 1, {"ok.py": b"fine\n"})
    bad = source.add("Shop-Core", 2, {"main.py": b"x\n"}, archive=zip_of([("main.py", b"y\n")]))
    assert not agent.apply(desired("Shop", "2.0", [good, bad]), "Production", source)
    assert_refused(agent, root, outside, before, "SHA-256")


# ---------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "/tmp/evil",
        "a/evil",
        "..",
        ".",
        "evil\\x",
        "C:evil",
        "evil\x00",
        "",
        ".stageboard-agent.json",
    ],
)
def test_an_unsafe_application_name_is_refused(agent, source, root, outside, name):
    app = desired(name, "1.0", [source.add("Shop-Core", 1, GOOD)])
    assert not agent.apply(app, "Production", source)
    assert os.listdir(root) == [".stageboard-agent.json"]
    assert listing(outside) == {"keep.txt": b"untouched"}
    assert source.requests == []


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/evil", "..", "evil\\x", "evil\n"])
def test_an_unsafe_module_name_is_refused(agent, source, root, outside, name):
    deliver_good(agent, source)
    before = listing(root / "Shop")
    app = desired("Shop", "2.0", [source.add(name, 1, GOOD)])
    assert not agent.apply(app, "Production", source)
    assert_refused(agent, root, outside, before, "plain folder names")


def test_a_version_becomes_a_safe_folder_name():
    assert sa.release_name("../../etc", {}).startswith("v.._.._etc-")
    assert sa.release_name("1.4.0+", {}).startswith("1.4.0+-")
    assert sa.release_name("", {}).startswith("untagged-")
    assert "/" not in sa.release_name("a/b", {})


# ---------------------------------------------------------------------------
# Symlinks planted under DIR


def test_an_application_folder_that_is_a_symlink_is_refused(agent, source, root, outside):
    (root / "Shop").symlink_to(outside)
    app = desired("Shop", "1.0", [source.add("Shop-Core", 1, GOOD)])
    assert not agent.apply(app, "Production", source)
    assert listing(outside) == {"keep.txt": b"untouched"}
    assert "Shop is a symlink" in "\n".join(agent.lines)


def test_a_releases_folder_that_is_a_symlink_is_refused(agent, source, root, outside):
    (root / "Shop").mkdir()
    (root / "Shop" / "releases").symlink_to(outside)
    app = desired("Shop", "1.0", [source.add("Shop-Core", 1, GOOD)])
    assert not agent.apply(app, "Production", source)
    assert listing(outside) == {"keep.txt": b"untouched"}
    assert "Shop/releases is a symlink" in "\n".join(agent.lines)


def test_a_symlink_planted_where_the_new_release_goes_is_not_written_through(agent, source, root, outside):
    deliver_good(agent, source)
    files = {"main.py": b"v2\n"}
    entry = source.add("Shop-Core", 2, files)
    planted = sa.release_name("2.0", {"Shop-Core": entry["tree_hash"]})
    (root / "Shop" / "releases" / planted).symlink_to(outside)

    assert agent.apply(desired("Shop", "2.0", [entry]), "Production", source)

    assert current_of(root) == f"releases/{planted}.2"
    assert (root / "Shop" / "current" / "Shop-Core" / "main.py").read_bytes() == b"v2\n"
    assert listing(outside) == {"keep.txt": b"untouched"}
    assert os.readlink(root / "Shop" / "releases" / planted) == str(outside)


def test_a_module_in_current_that_is_a_symlink_is_neither_copied_nor_followed(agent, source, root, outside):
    core = source.add("Shop-Core", 1, GOOD)
    assert agent.apply(desired("Shop", "1.0", [core]), "Production", source)
    # The same files, outside DIR, linked in place of the module: following the link would match.
    module = root / "Shop" / "current" / "Shop-Core"
    os.rename(module, outside / "Shop-Core")
    module.symlink_to(outside / "Shop-Core")
    before = listing(outside)
    assert agent.live("Shop", ["Shop-Core"])["Shop-Core"] != core["tree_hash"]
    source.requests.clear()

    assert agent.apply(desired("Shop", "1.0", [core], generation=1), "Production", source)

    assert ("archive", "Shop-Core", 1) in source.requests
    new = root / "Shop" / "current" / "Shop-Core"
    assert not new.is_symlink() and (new / "main.py").read_bytes() == GOOD["main.py"]
    assert listing(outside) == before


def test_a_file_in_current_that_is_a_symlink_is_neither_copied_nor_read(agent, source, root, outside):
    core = source.add("Shop-Core", 1, GOOD)
    assert agent.apply(desired("Shop", "1.0", [core]), "Production", source)
    target = outside / "main.py"
    target.write_bytes(GOOD["main.py"])
    planted = root / "Shop" / "current" / "Shop-Core" / "main.py"
    planted.unlink()
    planted.symlink_to(target)
    live = agent.live("Shop", ["Shop-Core"])["Shop-Core"]
    target.write_bytes(b"changed outside\n")
    assert agent.live("Shop", ["Shop-Core"])["Shop-Core"] == live != core["tree_hash"]
    source.requests.clear()

    assert agent.apply(desired("Shop", "1.0", [core], generation=1), "Production", source)

    assert ("archive", "Shop-Core", 1) in source.requests
    new = root / "Shop" / "current" / "Shop-Core" / "main.py"
    assert not new.is_symlink() and new.read_bytes() == GOOD["main.py"]
    assert target.read_bytes() == b"changed outside\n"


def test_a_current_link_pointing_outside_is_replaced_not_followed(agent, source, root, outside):
    (root / "Shop").mkdir()
    (root / "Shop" / "current").symlink_to(outside)
    assert agent.live("Shop", ["Shop-Core"])["Shop-Core"] != sa.tree_hash({})
    deliver_good(agent, source)
    assert current_of(root).startswith("releases/1.0-")
    assert listing(outside) == {"keep.txt": b"untouched"}


def test_a_current_that_is_a_real_folder_is_refused(agent, source, root, outside):
    (root / "Shop" / "current").mkdir(parents=True)
    (root / "Shop" / "current" / "file").write_bytes(b"mine")
    app = desired("Shop", "1.0", [source.add("Shop-Core", 1, GOOD)])
    assert not agent.apply(app, "Production", source)
    assert (root / "Shop" / "current" / "file").read_bytes() == b"mine"
    assert "current is not a symlink" in "\n".join(agent.lines)
    assert releases_of(root) == []


def test_a_state_file_that_is_a_symlink_is_neither_read_nor_written_through(root, outside, source):
    (outside / "state.json").write_text('{"etag": "planted"}')
    (root / ".stageboard-agent.json").symlink_to(outside / "state.json")
    agent = make_agent(root)
    try:
        assert agent.state == {}
        deliver_good(agent, source)
    finally:
        agent.close()
    assert (outside / "state.json").read_text() == '{"etag": "planted"}'
    assert not (root / ".stageboard-agent.json").is_symlink()


# ---------------------------------------------------------------------------
# What is live in current, and the drift upload


def test_live_hashes_what_is_in_current(agent, source, root):
    app = deliver_good(agent, source)
    wanted = app["modules"][0]["tree_hash"]
    assert agent.live("Shop", ["Shop-Core"]) == {"Shop-Core": wanted}
    (root / "Shop" / "current" / "Shop-Core" / "main.py").write_bytes(b"edited\n")
    edited = sa.tree_hash({"main.py": sha(b"edited\n"), "pkg/util.py": sha(GOOD["pkg/util.py"])})
    assert agent.live("Shop", ["Shop-Core"]) == {"Shop-Core": edited}


def test_a_fifo_in_current_is_drift_and_is_never_opened(agent, source, root):
    app = deliver_good(agent, source)
    os.mkfifo(root / "Shop" / "current" / "Shop-Core" / "pipe")
    live = agent.live("Shop", ["Shop-Core"])["Shop-Core"]
    assert live != app["modules"][0]["tree_hash"]


def test_a_module_deleted_from_current_hashes_as_empty(agent, source, root):
    deliver_good(agent, source)
    release = root / "Shop" / current_of(root)
    for path in sorted((release / "Shop-Core").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (release / "Shop-Core").rmdir()
    assert agent.live("Shop", ["Shop-Core"]) == {"Shop-Core": sa.tree_hash({})}


def test_the_drift_zip_holds_the_regular_files_of_current(agent, source, root, outside):
    deliver_good(agent, source)
    module = root / "Shop" / "current" / "Shop-Core"
    (module / "main.py").write_bytes(b"hotfix\n")
    (module / "secret").symlink_to(outside / "keep.txt")
    with zipfile.ZipFile(io.BytesIO(agent.drift_zip("Shop", "Shop-Core"))) as archive:
        assert sorted(archive.namelist()) == ["main.py", "pkg/util.py"]
        assert archive.read("main.py") == b"hotfix\n"


def test_many_modules_are_downloaded_together_and_each_checked(agent, source, root, outside):
    deliver_good(agent, source)
    before = listing(root / "Shop")
    modules = [source.add(f"Shop-M{n}", 1, {f"m{n}.py": f"{n}\n".encode()}) for n in range(12)]
    bad = source.add("Shop-M7", 2, {"m7.py": b"7\n"}, archive=zip_of([("m7.py", b"8\n")]))
    assert not agent.apply(desired("Shop", "2.0", modules[:7] + [bad] + modules[8:]), "Production", source)
    assert_refused(agent, root, outside, before, "SHA-256")

    source.requests.clear()
    assert agent.apply(desired("Shop", "2.0", modules), "Production", source)
    assert sorted(request for request in source.requests if request[0] == "archive") == sorted(
        ("archive", f"Shop-M{n}", 1) for n in range(12)
    )
    for n in range(12):
        assert (root / "Shop" / "current" / f"Shop-M{n}" / f"m{n}.py").read_bytes() == f"{n}\n".encode()


def test_its_tree_hash_is_the_servers(tmp_path):
    """The agent copies lifecycle/snapshots.tree_hash (it imports nothing of Stageboard): they must agree."""
    from lifecycle.snapshots import tree_hash

    manifests = [{}, {"a.py": sha(b"1")}, {"z/b.txt": sha(b""), "a b/ü.py": sha(b"\x00"), "A.py": sha(b"x")}]
    for manifest in manifests:
        assert sa.tree_hash(manifest) == tree_hash(manifest)
