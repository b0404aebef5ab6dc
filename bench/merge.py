"""Benchmark of merging a hotfix back: the merge page and the merge of a 1,000-file module, on PostgreSQL.

Builds, in a database of its own, applications of one module of FILES files
(each ~LINES lines of Python-like text) released as 1.0 in the four
environments, then a hotfix in Pre-Production that changes one line of one
file. Then times, on the first application:

  preview   GET of the merge page Pre-Production -> Quality Assurance through
            Django's test client (session, access, prepare, the engine, the
            form and the template), with its SQL queries and how many of them
            read file content (Blob.data), and how many bytes of content they read;
  prepare   hotfixes.merging.prepare() alone;

and, one application per run (a merge changes the target, so each run needs
its own), the merge as the page's Merge button makes it:

  merge     prepare() + perform() taking every change: the merged version
            published from its manifest, with its queries.

Then it does the same with a module of SMALL files, to show the number of
queries does not grow with the files (the merge's INSERTs of the new
version's file rows aside: bulk_create writes them in batches).

    .venv/bin/python bench/merge.py                     # 1,000 files, compared with 10
    .venv/bin/python bench/merge.py --files 5000 --runs 5

See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import PIPELINE  # noqa: E402
from grid import (  # noqa: E402  (the shared database helpers of the grid benchmark)
    DEFAULT_DATABASE_URL,
    _create_database,
    _drop_database,
    _split_database_url,
    configure_django,
)

TARGET_MS, TARGET_QUERIES = 50, 20  # issue 11: the merge preview of a 1,000-file module, one file changed


def file_text(n: int, lines: int) -> str:
    return "".join(
        f"def f{n}_{i}(x):  # line {i} of file {n}\n    return x + {i}\n" for i in range(lines // 2)
    )


def build(name: str, files: int, lines: int, environments, user):
    """One module of `files` files, released as 1.0 everywhere, hotfixed in Pre-Production."""
    from lifecycle.deploying.switching import deploy_tag
    from lifecycle.models import Application, Module
    from lifecycle.publishing import publish
    from lifecycle.tagging import tag_environment

    dev, qa, pre, prod = environments
    application = Application.objects.create(name=name, description="Merge benchmark")
    module = Module.objects.create(application=application, name=f"{name}-Core")
    content = {f"src/pkg{n // 100:02d}/file{n:04d}.py": file_text(n, lines).encode() for n in range(files)}
    publish(module, dev, content, user=user)
    tag = tag_environment(application, dev, "1.0")
    for environment in (qa, pre, prod):
        deploy_tag(tag, environment)
    first = next(iter(content))
    fixed = content[first].replace(b"return x + 1\n", b"return x + 1  # hotfixed\n", 1)
    publish(module, pre, {**content, first: fixed}, user=user)
    return application, sum(len(data) for data in content.values())


def measured(function, runs: int, *, warm: bool = True) -> dict:
    """Median, p90 (nearest rank) and fastest ms of `function(run)`, with its queries and content reads."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if warm:
        function(-1)
    timings, queries, reads = [], set(), set()
    for run in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            function(run)
            timings.append((time.perf_counter() - started) * 1000)
        queries.add(len(captured))
        reads.add(sum('"lifecycle_blob"."data"' in query["sql"] for query in captured))
        file_rows = sum(query["sql"].startswith('INSERT INTO "lifecycle_modulefile"') for query in captured)
    ordered = sorted(timings)
    return {
        "median": statistics.median(timings),
        "p90": ordered[math.ceil(0.9 * len(ordered)) - 1],
        "min": ordered[0],
        "queries": "/".join(str(count) for count in sorted(queries)),
        "reads": "/".join(str(count) for count in sorted(reads)),
        "file_rows": file_rows,
        "max_queries": max(queries),
    }


def content_bytes_read(function) -> int:
    """Bytes of file content one call reads from the database (Blob.data in the rows it fetches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lifecycle.models import Blob

    with CaptureQueriesContext(connection) as captured:
        function(0)
    total = 0
    for query in captured:
        if '"lifecycle_blob"."data"' in query["sql"]:
            hashes = [part.split("'")[1] for part in query["sql"].split("IN (", 1)[1].split(",")]
            total += sum(Blob.objects.filter(hash__in=hashes).values_list("size", flat=True))
    return total


def run_size(label, files, lines, runs, environments, user, client) -> dict:
    from hotfixes.merging import perform, prepare

    dev, qa, pre, prod = environments
    application, module_bytes = build(f"{label}-page", files, lines, environments, user)
    from django.urls import reverse

    url = f"{reverse('hotfixes:merge')}?application={application.pk}&source={pre.pk}&target={qa.pk}"

    def page(_):
        response = client.get(url)
        if response.status_code != 200 or b"hotfixed" not in response.content:
            raise RuntimeError(f"merge page answered {response.status_code}: {response.content[:500]!r}")

    preview = measured(page, runs)
    preview["bytes"] = content_bytes_read(page)
    prepared = measured(lambda _: prepare(application, pre, qa), runs)

    # One application per merge (and one for the warm-up): each merge changes its target.
    targets = [build(f"{label}-merge{run}", files, lines, environments, user)[0] for run in range(runs + 1)]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def merge(run):
        merge_prepared = prepare(targets[run + 1], pre, qa)
        perform(merge_prepared, user=user, fingerprint=merge_prepared.fingerprint)

    merged = measured(merge, runs)
    return {"files": files, "bytes": module_bytes, "preview": preview, "prepare": prepared, "merge": merged}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000, help="files of the module (default 1000)")
    parser.add_argument("--small", type=int, default=10, help="files of the module compared (default 10)")
    parser.add_argument("--lines", type=int, default=60, help="lines per file (default 60)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each, after one warm-up")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_merge"),
        help="PostgreSQL database to use, dropped and re-created, and dropped at the end "
        "(default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    options = parser.parse_args(argv)
    if options.files < 1 or options.small < 1 or options.runs < 1 or options.lines < 2:
        parser.error("--files, --small and --runs must be at least 1, --lines at least 2")

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    try:
        configure_django(options.database_url)
        import django
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from lifecycle.models import Environment

        call_command("migrate", verbosity=0, interactive=False)
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
        environments = Environment.objects.bulk_create(
            [Environment(name=n, position=p, is_production=prod) for n, p, prod in PIPELINE]
        )
        client = Client()
        client.force_login(user)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        print(
            f"Stageboard merge benchmark — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(
            f"a module of N files of {options.lines} lines each, released as 1.0 in 4 environments, "
            "one line of one file hotfixed in Pre-Production; merged Pre-Production -> Quality Assurance; "
            f"{options.runs} runs after one warm-up"
        )
        started = time.perf_counter()
        results = [
            run_size(label, files, options.lines, options.runs, environments, user, client)
            for label, files in (("Small", options.small), ("Large", options.files))
        ]
        print(f"data build and runs {time.perf_counter() - started:.1f} s\n")

        heading = f"{'what':34} {'files':>6} {'queries':>8} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}"
        print(f"{heading}  content read")
        print("-" * 100)
        for result in results:
            for key, what in (
                ("preview", "merge page  GET /merge"),
                ("prepare", "prepare() alone"),
                ("merge", "merge  prepare() + perform()"),
            ):
                row = result[key]
                reads = f"{row['reads']} quer{'y' if row['reads'] == '1' else 'ies'}"
                if key == "preview":
                    reads += f", {row['bytes']:,} of {result['bytes']:,} bytes"
                if key == "merge":
                    reads += f"; {row['file_rows']} INSERTs of file rows"
                print(
                    f"{what:34} {result['files']:>6,} {row['queries']:>8} {row['median']:>10.1f} "
                    f"{row['p90']:>8.1f} {row['min']:>8.1f}  {reads}"
                )
        small, large = results
        same_page = small["preview"]["queries"] == large["preview"]["queries"]
        merge_extra = (large["merge"]["max_queries"] - large["merge"]["file_rows"]) - (
            small["merge"]["max_queries"] - small["merge"]["file_rows"]
        )
        print(
            f"\nmerge page queries, {options.small} vs {options.files} files: "
            f"{'the same' if same_page else 'DIFFERENT'}; the merge's, file-row INSERTs aside: "
            f"{'the same' if merge_extra == 0 else f'{merge_extra:+} at {options.files} files'}"
        )
        met = large["preview"]["median"] <= TARGET_MS and large["preview"]["max_queries"] <= TARGET_QUERIES
        print(
            f"target: merge preview of {options.files:,} files ≤ {TARGET_MS} ms, ≤ {TARGET_QUERIES} queries: "
            f"{large['preview']['median']:.1f} ms, {large['preview']['queries']} queries — "
            f"{'met' if met else 'NOT met'}"
        )
        connection.close()
        return 0 if same_page and merge_extra == 0 else 1
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        if options.keep:
            print(f"\nkept database {name}: {options.database_url}")
        else:
            _drop_database(maintenance, name)


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
