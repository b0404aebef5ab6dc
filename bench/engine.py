"""Benchmark of the diff and merge engine (hotfixes/engine) against git, like for like.

Writes three versions of a 1,000-file, 100,000-line module into a temporary
directory: a base, a target and a source, each of the two changing 50 files
(20 of them the same files, edited in different places, so they merge without
conflict). Then times ours and git's in the same run, alternating one run of
each, and reports the medians and their ratio:

per line, one 100,000-line file (all the module's files concatenated), so that
git starts one process and the work per line is compared:
  (1) diff of base and target: `linediff.diff_lines` against `git diff --no-index`;
  (2) three-way merge: read, split, `textmerge.merge_text` + `resolve` against
      `git merge-file -p`;
per module, the 1,000-file case, both working from stored content:
  (3) three-way merge: `treemerge.merge_trees` + `apply_manifest` on the stored
      manifests (path -> SHA-256), reading only the files the source changed and
      storing the merged ones by their hash,
      against `git merge-tree --write-tree` in a throwaway repository holding
      the base, target and source commits (made before timing; git reads its own
      objects, one process, nothing hashed or started per file);
  (4) not a target: the diff of base and target, `treediff.diff_tree_files`
      against `git diff-tree -r -p`, also from stored objects.

The target is a ratio of at most 1.5 for (1), (2) and (3). Imports nothing from Django.

    .venv/bin/python bench/engine.py
    .venv/bin/python bench/engine.py --runs 15
    .venv/bin/python bench/engine.py --profile
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import merge3  # noqa: E402
import patiencediff  # noqa: E402

from hotfixes.engine.linediff import decode_text, diff_lines, split_lines  # noqa: E402
from hotfixes.engine.textmerge import merge_text, resolve  # noqa: E402
from hotfixes.engine.treediff import diff_tree_files  # noqa: E402
from hotfixes.engine.treemerge import apply_manifest, merge_trees  # noqa: E402

WORDS = [
    "cart",
    "order",
    "total",
    "price",
    "line",
    "quantity",
    "discount",
    "customer",
    "amount",
    "tax",
    "currency",
    "item",
    "shipping",
    "address",
    "invoice",
    "payment",
    "status",
    "request",
    "response",
    "session",
    "user",
    "basket",
]


def make_file(rng: random.Random, index: int, lines: int) -> list[str]:
    """About `lines` lines of Python-looking code, with the blank lines, `return`s and
    docstrings that repeat in real code (and make line matching ambiguous)."""
    out = [f'"""Module {index}: {" ".join(rng.sample(WORDS, 4))}."""\n', "\n", "import decimal\n", "\n"]
    function = 0
    while len(out) < lines:
        function += 1
        a, b = rng.sample(WORDS, 2)
        body = [
            "\n",
            "\n",
            f"def {a}_{b}_{function}({a}, {b}=None):\n",
            f'    """Return the {a} of the {b}."""\n',
            f"    if {b} is None:\n",
            "        return None\n",
            f"    {a}_total = decimal.Decimal({rng.randint(0, 999)})\n",
            f"    for {b}_item in {b}:\n",
            f"        {a}_total += {b}_item.{rng.choice(WORDS)} * {rng.randint(1, 9)}\n",
            f"    return {a}_total\n",
        ]
        out.extend(body)
    return out[:lines]


def edit_file(rng: random.Random, lines: list[str], first: int, last: int, tag: str) -> list[str]:
    """Three edits between lines `first` and `last` (0-based): a replacement, an insertion, a deletion."""
    lines = list(lines)
    replace_at, insert_at, delete_at = sorted(rng.sample(range(first, last), 3))
    lines[replace_at] = f"    {tag}_fix = {rng.randint(0, 10**6)}  # changed by the {tag}\n"
    lines.insert(insert_at, f"    # {tag}: added a check\n    assert {rng.choice(WORDS)} is not None\n")
    del lines[delete_at + 1]
    return lines


def build(root: Path, files: int, lines: int, changed: int, overlap: int, seed: int) -> dict:
    rng = random.Random(seed)
    paths = [f"pkg{index % 20:02d}/module{index:04d}.py" for index in range(files)]
    base = {path: make_file(rng, index, lines) for index, path in enumerate(paths)}
    order = rng.sample(paths, len(paths))
    only_target, both, only_source = (
        order[: changed - overlap],
        order[changed - overlap : changed],
        order[changed : 2 * changed - overlap],
    )
    target, source = dict(base), dict(base)
    for path in only_target + both:
        # The target edits the first half of the file, the source the second: no conflicts.
        target[path] = edit_file(rng, base[path], 5, lines // 2 - 5, "target")
    for path in only_source + both:
        source[path] = edit_file(rng, base[path], lines // 2 + 5, lines - 5, "source")
    trees = {}
    for name, version in (("base", base), ("target", target), ("source", source)):
        folder = root / name
        for path, content in version.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text("".join(content))
        trees[name] = folder
    return {"paths": paths, "trees": trees, "changed": sorted(only_target + both + only_source)}


def manifest(folder: Path, paths: list[str], blobs: dict[str, Path]) -> dict[str, str]:
    """path -> SHA-256 of the content, as stored in the database; `blobs` learns where each hash lives."""
    result = {}
    for path in paths:
        file = folder / path
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        result[path] = digest
        blobs.setdefault(digest, file)
    return result


def git(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # No user or system configuration (diff.algorithm, pager, colour) changes what git does.
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        **kwargs.pop("env", {}),
    }
    return subprocess.run(["git", *args], env=env, **kwargs)


def make_repository(root: Path, trees: dict[str, Path]) -> Path:
    """A bare repository with the commits base, target (on base) and source (on base) as branches.

    Built before any timing; git hashes and stores every file here, once, as it would have when
    the versions were committed.
    """
    repository = root / "repository.git"
    git("init", "--quiet", "--bare", str(repository), check=True)
    commits = {}
    for name in ("base", "target", "source"):
        index = {"GIT_INDEX_FILE": str(root / f"index-{name}")}
        where = ("--git-dir", str(repository), "--work-tree", str(trees[name]))
        git(*where, "add", "--all", ".", cwd=trees[name], env=index, check=True)
        tree = git(*where, "write-tree", env=index, capture_output=True, text=True, check=True).stdout.strip()
        parents = ("-p", commits["base"]) if name != "base" else ()
        commits[name] = git(
            "--git-dir", str(repository), "commit-tree", tree, *parents, "-m", name,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        git("--git-dir", str(repository), "update-ref", f"refs/heads/{name}", commits[name], check=True)
    return repository


def side_by_side(ours: Callable[[], object], theirs: Callable[[], object], runs: int) -> tuple[float, float]:
    """The median times of `ours` and `theirs`, run alternately so that both meet the same machine load."""
    ours(), theirs()  # warm-up: page cache, imports, git's first object lookups
    ours_times, their_times = [], []
    for _ in range(runs):
        for function, times in ((ours, ours_times), (theirs, their_times)):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(their_times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100, help="lines per file")
    parser.add_argument("--changed", type=int, default=50, help="files each side changes")
    parser.add_argument("--overlap", type=int, default=20, help="of which both sides change")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run of each of ours")
    parser.add_argument("--keep", action="store_true", help="leave the temporary directory behind")
    options = parser.parse_args(argv)

    git_version = git("--version", capture_output=True, text=True).stdout.strip()
    print(
        f"Stageboard engine benchmark — Python {platform.python_version()}, {git_version}, "
        f"merge3 {'.'.join(map(str, merge3.__version__))}, patiencediff "
        f"{'.'.join(map(str, patiencediff.__version__))} ({patiencediff.PatienceSequenceMatcher.__name__}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    root = Path(tempfile.mkdtemp(prefix="stageboard-engine-"))
    try:
        started = time.perf_counter()
        data = build(root, options.files, options.lines, options.changed, options.overlap, options.seed)
        paths, trees, changed = data["paths"], data["trees"], data["changed"]
        blobs: dict[str, Path] = {}
        manifests = {name: manifest(folder, paths, blobs) for name, folder in trees.items()}
        for name in ("base", "target", "source"):
            content = b"".join((trees[name] / path).read_bytes() for path in paths)
            (root / f"all-{name}.py").write_bytes(content)
        repository = make_repository(root, trees)
        lines = options.files * options.lines
        print(
            f"data: {options.files:,} files x {options.lines} lines = {lines:,} lines per version; target "
            f"and source change {options.changed} files each, {options.overlap} of them both "
            f"({len(changed)} files to merge); built, with the git repository, in "
            f"{time.perf_counter() - started:.1f} s, in {root}"
        )

        def read(digest: str) -> bytes:
            return blobs[digest].read_bytes()

        def on_disk(name: str) -> str:
            return str(root / f"all-{name}.py")

        # (label, ours, git, whether the 1.5 target applies)
        results: list[tuple[str, float, float, bool]] = []

        # (1) Diff of one 100,000-line file.
        def ours_diff():
            return diff_lines(Path(on_disk("base")).read_bytes(), Path(on_disk("target")).read_bytes())

        def git_diff(*flags: str):
            def run():
                git("diff", "--no-index", "--no-color", *flags, on_disk("base"), on_disk("target"),
                    stdout=subprocess.DEVNULL, check=False)  # fmt: skip

            return run

        diff = ours_diff()
        numstat = git("diff", "--no-index", "--numstat", on_disk("base"), on_disk("target"),
                      capture_output=True, text=True).stdout.split("\t")  # fmt: skip
        assert (diff.added, diff.deleted) == (int(numstat[0]), int(numstat[1])), (
            "our line counts differ from git's"
        )
        results.append((f"(1) one {lines:,}-line file, diff / git diff --no-index",
                        *side_by_side(ours_diff, git_diff(), options.runs), True))  # fmt: skip
        results.append(("    the same / git diff --no-index --patience (our algorithm)",
                        *side_by_side(ours_diff, git_diff("--patience"), options.runs), False))  # fmt: skip

        # (2) Three-way merge of one 100,000-line file.
        def ours_merge():
            texts = [decode_text(Path(on_disk(name)).read_bytes()) for name in ("base", "target", "source")]
            return resolve(merge_text(*(split_lines(text) for text in texts))).text.encode("utf-8")

        def git_merge(**kwargs):
            return git("merge-file", "-p", on_disk("target"), on_disk("base"), on_disk("source"),
                       check=True, **kwargs)  # fmt: skip

        assert ours_merge() == git_merge(capture_output=True).stdout, "our merge differs from git merge-file"
        results.append((f"(2) one {lines:,}-line file, merge / git merge-file",
                        *side_by_side(ours_merge, lambda: git_merge(stdout=subprocess.DEVNULL), options.runs),
                        True))  # fmt: skip

        # (3) Three-way merge of the module, from stored content on both sides.
        stored: dict[str, bytes] = {}

        def store(content: bytes) -> str:
            digest = hashlib.sha256(content).hexdigest()
            stored[digest] = content
            return digest

        def read_stored(digest: str) -> bytes:
            return stored[digest] if digest in stored else read(digest)

        def ours_module_merge():
            # What a merge does (hotfixes.merging): the tree merge from the three stored manifests,
            # every source change taken (none conflicts here), the merged module as a manifest whose
            # merged files are stored by their hash, as git writes its merged blobs and tree.
            merged = apply_manifest(
                merge_trees(manifests["base"], manifests["target"], manifests["source"], read)
            )
            return {
                path: store(item) if isinstance(item, bytes) else item for path, item in merged.files.items()
            }

        def git_merge_tree(**kwargs):
            return git("--git-dir", str(repository), "merge-tree", "--write-tree", "target", "source",
                       check=True, **kwargs)  # fmt: skip

        merged = ours_module_merge()
        tree = git_merge_tree(capture_output=True, text=True).stdout.split()[0]
        listing = git("--git-dir", str(repository), "ls-tree", "-r", "-z", tree,
                      capture_output=True, check=True).stdout  # fmt: skip
        git_blobs = {entry.split(b"\t")[1].decode(): entry.split()[2].decode()
                     for entry in listing.split(b"\0") if entry}  # fmt: skip
        assert git_blobs.keys() == merged.keys(), "our merged module has other paths than git's"
        contents = git("--git-dir", str(repository), "cat-file", "--batch",
                       input="".join(f"{git_blobs[path]}\n" for path in paths).encode(),
                       capture_output=True, check=True).stdout  # fmt: skip
        offset = 0
        for path in paths:
            header_end = contents.index(b"\n", offset)
            size = int(contents[offset:header_end].split()[2])
            content = contents[header_end + 1 : header_end + 1 + size]
            offset = header_end + 2 + size
            assert content == read_stored(merged[path]), f"{path}: our merge differs from git merge-tree"
        results.append((f"(3) {options.files:,}-file module, merge / git merge-tree (loose objects)",
                        *side_by_side(ours_module_merge, lambda: git_merge_tree(stdout=subprocess.DEVNULL),
                                      options.runs), True))  # fmt: skip

        # (4) Diff of the module from stored content: not a target.
        def ours_module_diff():
            return diff_tree_files(manifests["base"], manifests["target"], read)

        def git_diff_tree():
            git("--git-dir", str(repository), "diff-tree", "-r", "-p", "--no-color", "base", "target",
                stdout=subprocess.DEVNULL, check=True)  # fmt: skip

        results.append((f"(4) {options.files:,}-file module, diff / git diff-tree -r -p (loose)",
                        *side_by_side(ours_module_diff, git_diff_tree, options.runs), False))  # fmt: skip

        # A repository that has been gc'ed keeps its objects in a pack: (3) again from there.
        git("--git-dir", str(repository), "repack", "-a", "-d", "-q", check=True)
        git("--git-dir", str(repository), "prune-packed", check=True)
        results.append(("    (3) again, git's objects packed (git repack -a -d)",
                        *side_by_side(ours_module_merge, lambda: git_merge_tree(stdout=subprocess.DEVNULL),
                                      options.runs), True))  # fmt: skip

        print(
            f"checked: our diff counts git's lines (+{diff.added} -{diff.deleted}); our merges give git's "
            f"bytes: the one file, and all {len(paths):,} files of the module ({len(changed)} merged)"
        )
        heading = f"measurement (median of {options.runs} runs each, alternating)"
        print(f"\n{heading:72} {'ours ms':>9} {'git ms':>9} {'ratio':>7}")
        print("-" * 100)
        for label, ours, theirs, _ in results:
            print(f"{label:72} {ours * 1000:9.1f} {theirs * 1000:9.1f} {ours / theirs:7.3f}")
        worst = max(ours / theirs for _, ours, theirs, target in results if target)
        print(f"\nworst ratio of (1), (2), (3): {worst:.3f} (target: at most 1.5); "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip

        if options.profile:
            for label, function in (("(1)", ours_diff), ("(2)", ours_merge), ("(3)", ours_module_merge)):
                print(f"\ncProfile of one run of ours, {label}")
                profiler = cProfile.Profile()
                profiler.runcall(function)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        return 0 if worst <= 1.5 else 1
    finally:
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
