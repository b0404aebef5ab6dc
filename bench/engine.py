"""Benchmark of the diff and merge engine (hotfixes/engine) against git.

Writes three versions of a 1,000-file, 100,000-line module into a temporary
directory: a base, a target and a source, each of the two changing 50 files
(20 of them the same files, edited in different places, so they merge without
conflict). Then times, as the median of several runs after one warm-up:

(a) the diff of base and target: our treediff + linediff of the changed files
    against `git diff --no-index` of the two folders (full patch to /dev/null);
(b) the three-way merge of every file either side changed: our textmerge +
    resolve per file against `git merge-file -p`, one process per file.

Imports nothing from Django.

    .venv/bin/python bench/engine.py
    .venv/bin/python bench/engine.py --files 2000 --changed 100 --runs 9
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
from hotfixes.engine.treemerge import apply, merge_trees  # noqa: E402

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


def median_time(function: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    function()  # warm-up: page cache, imports
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def git(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # No user or system configuration (diff.algorithm, pager, colour) changes what git does.
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}
    return subprocess.run(["git", *args], env=env, **kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100, help="lines per file")
    parser.add_argument("--changed", type=int, default=50, help="files each side changes")
    parser.add_argument("--overlap", type=int, default=20, help="of which both sides change")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run of ours")
    parser.add_argument("--keep", action="store_true", help="leave the temporary directory behind")
    options = parser.parse_args(argv)

    git_version = git("--version", capture_output=True, text=True).stdout.strip()
    print(
        f"Stageboard engine benchmark — Python {platform.python_version()}, {git_version}, "
        f"merge3 {'.'.join(map(str, merge3.__version__))}, patiencediff "
        f"{'.'.join(map(str, patiencediff.__version__))} ({patiencediff.PatienceSequenceMatcher.__name__}), "
        f"{os.cpu_count()} CPUs"
    )
    root = Path(tempfile.mkdtemp(prefix="stageboard-engine-"))
    try:
        started = time.perf_counter()
        data = build(root, options.files, options.lines, options.changed, options.overlap, options.seed)
        paths, trees, changed = data["paths"], data["trees"], data["changed"]
        blobs: dict[str, Path] = {}
        manifests = {name: manifest(folder, paths, blobs) for name, folder in trees.items()}
        print(
            f"data: {options.files:,} files x {options.lines} lines = "
            f"{options.files * options.lines:,} lines per version; target and source change "
            f"{options.changed} files each, {options.overlap} of them both ({len(changed)} files to merge); "
            f"built in {time.perf_counter() - started:.1f} s, in {root}"
        )

        def read(digest: str) -> bytes:
            return blobs[digest].read_bytes()

        results = []

        # (a) Diff base -> target.
        def ours_diff():
            return diff_tree_files(manifests["base"], manifests["target"], read)

        def ours_diff_hashing():
            # As if the manifests were not stored: read and hash all files of both versions first.
            known: dict[str, Path] = {}
            base = manifest(trees["base"], paths, known)
            target = manifest(trees["target"], paths, known)
            return diff_tree_files(base, target, lambda digest: known[digest].read_bytes())

        def git_diff(*flags):
            def run():
                git(
                    "diff",
                    "--no-index",
                    "--no-color",
                    *flags,
                    "base",
                    "target",
                    cwd=root,
                    stdout=subprocess.DEVNULL,
                    check=False,
                )

            return run

        ours_a, _ = median_time(ours_diff, options.runs)
        ours_a_hashing, _ = median_time(ours_diff_hashing, options.runs)
        git_a, _ = median_time(git_diff(), options.runs)
        git_a_patience, _ = median_time(git_diff("--patience"), options.runs)
        diffs = ours_diff()
        numstat = git(
            "diff", "--no-index", "--numstat", "base", "target", cwd=root, capture_output=True, text=True
        ).stdout.splitlines()
        counted = [line.split("\t")[:2] for line in numstat]
        git_counts = (sum(int(added) for added, _ in counted), sum(int(deleted) for _, deleted in counted))
        our_counts = (sum(d.added for _, d in diffs), sum(d.deleted for _, d in diffs))
        hunks = sum(len(d.hunks) for _, d in diffs)
        print(
            f"\n(a) diff base -> target: {len(diffs)} changed files, {hunks} hunks, +{our_counts[0]} "
            f"-{our_counts[1]} lines (git --numstat: +{git_counts[0]} -{git_counts[1]})"
        )
        # (label, ours, git, whether the 1.5 target applies)
        results.append(("(a) diff: ours (stored manifests) / git diff --no-index", ours_a, git_a, True))
        results.append(("(a) diff: ours / git diff --no-index --patience", ours_a, git_a_patience, True))
        results.append(("(a) diff: ours hashing both trees first / git diff", ours_a_hashing, git_a, False))

        # (b) Three-way merge of every changed file.
        def ours_merge():
            merged = {}
            for path in changed:
                texts = [
                    decode_text((trees[name] / path).read_bytes()) for name in ("base", "target", "source")
                ]
                base, target, source = (split_lines(text) for text in texts)
                result = resolve(merge_text(base, target, source))
                merged[path] = result.text.encode("utf-8")
            return merged

        def ours_tree_merge():
            return merge_trees(manifests["base"], manifests["target"], manifests["source"], read)

        def ours_tree_merge_apply():
            return apply(ours_tree_merge())

        def git_merge_files():
            for path in changed:
                git(
                    "merge-file",
                    "-p",
                    str(trees["target"] / path),
                    str(trees["base"] / path),
                    str(trees["source"] / path),
                    stdout=subprocess.DEVNULL,
                    check=True,
                )

        trivial = root / "trivial.txt"
        trivial.write_text("x\n")

        def git_spawn_only():
            for _ in changed:
                git(
                    "merge-file",
                    "-p",
                    str(trivial),
                    str(trivial),
                    str(trivial),
                    stdout=subprocess.DEVNULL,
                    check=True,
                )

        ours_b, _ = median_time(ours_merge, options.runs)
        ours_tree_b, _ = median_time(ours_tree_merge, options.runs)
        ours_apply_b, _ = median_time(ours_tree_merge_apply, options.runs)
        git_b, _ = median_time(git_merge_files, options.runs)
        spawn_b, _ = median_time(git_spawn_only, options.runs)

        # The merged files must be git's, byte for byte (no conflicts in this data set).
        merged = ours_merge()
        for path in changed:
            expected = git(
                "merge-file",
                "-p",
                str(trees["target"] / path),
                str(trees["base"] / path),
                str(trees["source"] / path),
                capture_output=True,
                check=True,
            ).stdout
            assert merged[path] == expected, f"{path}: our merge differs from git merge-file"
        outcome = ours_tree_merge_apply()
        assert outcome.unresolved == [] and all(outcome.files[path] == merged[path] for path in changed)
        print(
            f"(b) merge of {len(changed)} changed files: identical to git merge-file's output, no conflicts; "
            f"merge_trees + apply gives the same {len(outcome.files):,}-file module"
        )
        results.append(("(b) merge: ours textmerge+resolve / git merge-file x N", ours_b, git_b, True))

        # (c) Not a target: all files of each version in one file, so git starts one process and the
        # comparison is of the work per line.
        for name in ("base", "target", "source"):
            content = b"".join((trees[name] / path).read_bytes() for path in paths)
            (root / f"all-{name}.py").write_bytes(content)

        def ours_one_diff():
            return diff_lines((root / "all-base.py").read_bytes(), (root / "all-target.py").read_bytes())

        def git_one_diff():
            git(
                "diff",
                "--no-index",
                "--no-color",
                "all-base.py",
                "all-target.py",
                cwd=root,
                stdout=subprocess.DEVNULL,
                check=False,
            )

        def ours_one_merge():
            texts = [
                decode_text((root / f"all-{name}.py").read_bytes()) for name in ("base", "target", "source")
            ]
            return resolve(merge_text(*(split_lines(text) for text in texts))).text.encode("utf-8")

        def git_one_merge(**kwargs):
            return git(
                "merge-file",
                "-p",
                "all-target.py",
                "all-base.py",
                "all-source.py",
                cwd=root,
                check=True,
                **kwargs,
            )

        assert ours_one_merge() == git_one_merge(capture_output=True).stdout
        lines = options.files * options.lines
        results.append(
            (
                f"(c) one {lines:,}-line file, diff: ours / git",
                median_time(ours_one_diff, options.runs)[0],
                median_time(git_one_diff, options.runs)[0],
                False,
            )
        )
        results.append(
            (
                f"(c) one {lines:,}-line file, merge: ours / git",
                median_time(ours_one_merge, options.runs)[0],
                median_time(lambda: git_one_merge(stdout=subprocess.DEVNULL), options.runs)[0],
                False,
            )
        )

        heading = f"measurement (median of {options.runs} runs)"
        print(f"\n{heading:64} {'ours ms':>9} {'git ms':>9} {'ratio':>7}")
        print("-" * 92)
        for label, ours, theirs, _ in results:
            print(f"{label:64} {ours * 1000:9.1f} {theirs * 1000:9.1f} {ours / theirs:7.3f}")
        print(
            f"\nalso: git merge-file spawn baseline ({len(changed)} runs on 1-line files) "
            f"{spawn_b * 1000:.1f} ms; merge_trees alone {ours_tree_b * 1000:.1f} ms; "
            f"merge_trees + apply (reads all {options.files:,} target files) {ours_apply_b * 1000:.1f} ms"
        )
        worst = max(ours / theirs for _, ours, theirs, target in results if target)
        print(f"worst ratio of (a) and (b): {worst:.3f} (target: at most 1.5)")

        if options.profile:
            profiler = cProfile.Profile()
            profiler.runcall(lambda: (ours_diff(), ours_merge()))
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
        return 0 if worst <= 1.5 else 1
    finally:
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
