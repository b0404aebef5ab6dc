"""Benchmark of the grid's conditional refresh (lifecycle/refresh.py) on PostgreSQL.

Builds the data set of bench/grid.py (500 applications x 4 environments x 10 modules by
default) in a database of its own, loads the grid once as a superuser with django.test.Client,
then times RUNS refreshes that find nothing changed (the 204), RUNS refreshes after one
application changed (only its row is rendered and comes back) and RUNS after a change of no one
application (an environment renamed: the whole page is rendered to compare). Server time: the
request through Django's whole middleware stack in process, no HTTP, which is what the target
"≤ 5 ms server time" means.

    .venv/bin/python bench/refresh.py                   # 500 apps x 10 modules, 200 runs
    .venv/bin/python bench/refresh.py --apps 2000 --runs 100

See docs/performance.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grid  # noqa: E402  (bench/grid.py: the data set and the database handling)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/stageboard_bench_refresh"


def shown(html: str) -> dict[str, str]:
    """What the page's script sends: the revision shown and each part's id and hash, in order."""
    token = re.search(r'data-revision="([^"]*)"', html).group(1)
    parts = re.findall(r'<(?:thead|tr|nav)[^>]* id="([\w-]+)"[^>]* data-hash="([0-9a-f]+)"', html)
    return {"revision": token, "parts": ",".join(f"{part}:{digest}" for part, digest in parts)}


def summary(label: str, times: list[float], sizes: list[int], queries: int, status: int) -> str:
    times = sorted(times)
    p90 = times[int(len(times) * 0.9) - 1]
    return (
        f"{label:<34} status {status}  {queries} queries  median {statistics.median(times) * 1000:6.2f} ms  "
        f"p90 {p90 * 1000:6.2f} ms  min {times[0] * 1000:6.2f} ms  body {max(sizes)} B"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--modules", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200, help="timed refreshes of each kind (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database at the end")
    args = parser.parse_args(argv)
    name, maintenance_url = grid._split_database_url(DEFAULT_DATABASE_URL)
    grid._create_database(maintenance_url, name, replace=True)
    try:
        grid.configure_django(DEFAULT_DATABASE_URL)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from lifecycle.models import Environment, Module
        from lifecycle.publishing import publish

        call_command("migrate", verbosity=0, interactive=False)
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
        grid.build_data(args.apps, args.modules, user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        client = Client()
        client.force_login(user)
        headers = {"HTTP_HX_REQUEST": "true"}
        started = time.perf_counter()
        page = client.get("/").content.decode()
        print(f"full page: {(time.perf_counter() - started) * 1000:.0f} ms, {len(page)} B")
        sent = shown(page)
        print(f"a refresh sends {len(sent['revision']) + len(sent['parts'])} B of revision and row hashes")

        def run(data) -> tuple[list[float], list[int], int, int]:
            client.post("/", data, **headers)  # warm-up
            times, sizes = [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                response = client.post("/", data, **headers)
                times.append(time.perf_counter() - started)
                sizes.append(len(response.content))
            with CaptureQueriesContext(connection) as queries:
                response = client.post("/", data, **headers)
            head = sum(len(f"{name}: {value}\r\n") for name, value in response.items())
            print(f"  response headers {head} B: {', '.join(name for name, _ in response.items())}")
            return times, sizes, len(queries.captured_queries), response.status_code

        print(summary("unchanged refresh (204)", *run(sent)))
        module = Module.objects.order_by("pk").first()
        environment = Environment.objects.order_by("position").first()
        publish(module, environment, {"bench.txt": b"one change"}, user=user, comment="bench")
        print(summary("one application changed (1 row)", *run(sent)))
        # A change of no one application (an environment renamed): the whole page is compared.
        environment.name = f"{environment.name} "
        environment.save()
        print(summary("anything changed (page compared)", *run(sent)))
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            grid._drop_database(maintenance_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
