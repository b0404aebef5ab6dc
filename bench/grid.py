"""Benchmark of the pipeline grid (the home page `/`) on a large PostgreSQL data set.

Builds APPS applications x 4 environments x MODULES modules in a database of its
own, logs in as a superuser with django.test.Client and renders the full page
and the htmx fragment of the grid RUNS times each (after one warm-up), printing
the queries per render, median / p90 / min time and the response size.

    .venv/bin/python bench/grid.py                      # 500 apps x 10 modules, 10 runs
    .venv/bin/python bench/grid.py --apps 100 --runs 5
    .venv/bin/python bench/grid.py --profile            # plus a cProfile of one render
    .venv/bin/python bench/grid.py --keep               # leave the database behind

See bench/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/stageboard_bench"

ENVIRONMENTS = [  # name, position, is_production
    ("Development", 0, False),
    ("Test", 1, False),
    ("Acceptance", 2, False),
    ("Production", 3, True),
]


# --------------------------------------------------------------------------- database


def _split_database_url(url: str) -> tuple[str, str]:
    """(database name, URL of the server's `postgres` maintenance database)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql", "psql"}:
        sys.exit(f"--database-url must be a PostgreSQL URL, not {url!r}")
    name = parts.path.lstrip("/")
    if not name:
        sys.exit(f"--database-url names no database: {url!r}")
    maintenance = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    return name, maintenance


def _database_exists(maintenance_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        return (
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        )


def _create_database(maintenance_url: str, name: str, *, replace: bool) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        if replace:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_database(maintenance_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def configure_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench"
    os.environ["HTTPS"] = "false"
    os.environ["STATIC_MANIFEST"] = "false"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # WhiteNoise warns that STATIC_ROOT does not exist: collectstatic is irrelevant here.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    import django

    django.setup()


# --------------------------------------------------------------------------- data set


def build_data(apps: int, modules_per_app: int, user) -> dict[str, int]:
    """Bulk-create the data set; return what kind of variety it holds."""
    from django.db import transaction
    from django.utils import timezone

    from hotfixes.models import Hotfix, HotfixChange
    from lifecycle.models import (
        Application,
        ApplicationTag,
        Blob,
        CurrentVersion,
        Environment,
        EnvironmentTag,
        Module,
        ModuleChange,
        ModuleFile,
        ModuleVersion,
        TagMember,
    )
    from lifecycle.snapshots import content_hash, tree_hash

    now = timezone.now()
    stats = dict.fromkeys(
        ["wip_dev", "release_in_flight", "fewer_environments", "open_hotfixes", "solved_hotfixes"], 0
    )

    with transaction.atomic():
        environments = Environment.objects.bulk_create(
            [
                Environment(name=name, position=position, is_production=prod)
                for name, position, prod in ENVIRONMENTS
            ]
        )
        dev, test, acc, prod = environments

        applications = Application.objects.bulk_create(
            [Application(name=f"app-{i:04d}", description=f"Benchmark application {i}") for i in range(apps)],
            batch_size=1000,
        )
        modules = Module.objects.bulk_create(
            [
                Module(application=application, name=f"{application.name}-m{j:02d}")
                for application in applications
                for j in range(modules_per_app)
            ],
            batch_size=2000,
        )
        modules_of = {
            application.pk: modules[index * modules_per_app : (index + 1) * modules_per_app]
            for index, application in enumerate(applications)
        }

        # ---- versions: planned in memory, then created in bulk, one pass per version number.
        blobs: dict[str, bytes] = {}
        next_number: dict[int, int] = {}
        planned: list[dict] = []  # one dict per version to create

        def plan_version(module, label: str, parent_key=None, environment=None) -> dict:
            data = f"# {module.name} {label}\nprint({module.name!r}, {label!r})\n".encode()
            digest = content_hash(data)
            blobs[digest] = data
            number = next_number.get(module.pk, 0) + 1
            next_number[module.pk] = number
            entry = {
                "module": module,
                "number": number,
                "digest": digest,
                "size": len(data),
                "parent": parent_key,
                "environment": environment,
                "label": label,
            }
            planned.append(entry)
            return entry

        # Per application, per environment: module -> planned version entry, and the tags.
        running: dict[tuple[int, int], dict[int, dict]] = {}
        tag_plans: list[tuple] = []  # (application, number, environment tagged in, {module pk: entry})
        # (app pk, env pk) -> (application, environment, tag number)
        env_tags: dict[tuple[int, int], tuple] = {}
        hotfix_plans: list[tuple] = []  # (application, environment, module, new entry, replaced entry, open)

        for i, application in enumerate(applications):
            mods = modules_of[application.pk]
            deployed = environments
            if i % 10 == 7:
                deployed = environments[:2]  # never got past Test
            elif i % 10 == 9:
                deployed = environments[:3]  # not in Production yet
            if len(deployed) < len(environments):
                stats["fewer_environments"] += 1

            v1 = {m.pk: plan_version(m, "v1", environment=dev) for m in mods}
            state = {env.pk: dict(v1) for env in deployed}
            tag_plans.append((application, "1.0", dev, dict(v1)))
            for env in deployed:
                env_tags[application.pk, env.pk] = (application, env, "1.0")

            if i % 4 == 1 and modules_per_app >= 3:
                # A release in flight: 1.1 (3 modules changed) tagged in Development, deployed to Test.
                stats["release_in_flight"] += 1
                release = dict(v1)
                for m in mods[:3]:
                    release[m.pk] = plan_version(m, "v1.1", parent_key=v1[m.pk], environment=dev)
                tag_plans.append((application, "1.1", dev, dict(release)))
                for env in deployed[:2]:
                    state[env.pk] = dict(release)
                    env_tags[application.pk, env.pk] = (application, env, "1.1")

            if i % 5 == 0 and modules_per_app >= 2:
                # Work in progress: the last two modules re-published in Development, untagged ("x.y+").
                stats["wip_dev"] += 1
                for m in mods[-2:]:
                    previous = state[dev.pk][m.pk]
                    state[dev.pk][m.pk] = plan_version(m, "wip", parent_key=previous, environment=dev)

            if i % 9 == 4 and prod in deployed and modules_per_app >= 6:
                # An open hotfix in Production: one module published there directly.
                stats["open_hotfixes"] += 1
                m = mods[5]
                previous = state[prod.pk][m.pk]
                state[prod.pk][m.pk] = plan_version(m, "hotfix", parent_key=previous, environment=prod)
                hotfix_plans.append((application, prod, m, state[prod.pk][m.pk], previous, True))

            if i % 25 == 12 and acc in deployed and modules_per_app >= 5:
                # A hotfix in Acceptance, since solved (history only; the grid ignores it).
                stats["solved_hotfixes"] += 1
                m = mods[4]
                previous = state[acc.pk][m.pk]
                fixed = plan_version(m, "acc-fix", parent_key=previous, environment=acc)
                hotfix_plans.append((application, acc, m, fixed, previous, False))

            for env in deployed:
                running[application.pk, env.pk] = state[env.pk]

        Blob.objects.bulk_create(
            [Blob(hash=digest, data=data, size=len(data), is_binary=False) for digest, data in blobs.items()],
            batch_size=2000,
        )
        # Parents must exist before their children: create by version number.
        for number in sorted({entry["number"] for entry in planned}):
            batch = [entry for entry in planned if entry["number"] == number]
            objects = ModuleVersion.objects.bulk_create(
                [
                    ModuleVersion(
                        module=entry["module"],
                        number=number,
                        parent_id=entry["parent"]["object"].pk if entry["parent"] else None,
                        tree_hash=tree_hash({"main.py": entry["digest"]}),
                        file_count=1,
                        total_size=entry["size"],
                        comment=f"benchmark {entry['label']}",
                        published_in=entry["environment"],
                        created_by=user,
                    )
                    for entry in batch
                ],
                batch_size=2000,
            )
            for entry, obj in zip(batch, objects, strict=True):
                entry["object"] = obj
        ModuleFile.objects.bulk_create(
            [
                ModuleFile(version=entry["object"], path="main.py", blob_id=entry["digest"])
                for entry in planned
            ],
            batch_size=2000,
        )

        current_rows, change_rows = [], []
        for (_application_pk, environment_pk), state in running.items():
            environment = next(env for env in environments if env.pk == environment_pk)
            for entry in state.values():
                version = entry["object"]
                current_rows.append(
                    CurrentVersion(
                        environment=environment,
                        module=entry["module"],
                        version=version,
                        changed_at=now,
                        changed_by=user,
                    )
                )
                change_rows.append(
                    ModuleChange(
                        environment=environment,
                        module=entry["module"],
                        version=version,
                        previous_version=entry["parent"]["object"] if entry["parent"] else None,
                        kind=ModuleChange.Kind.PUBLISH
                        if entry["environment"].pk == environment.pk
                        else ModuleChange.Kind.DEPLOY,
                        user=user,
                        at=now,
                    )
                )
        CurrentVersion.objects.bulk_create(current_rows, batch_size=5000)
        ModuleChange.objects.bulk_create(change_rows, batch_size=5000)

        tags = ApplicationTag.objects.bulk_create(
            [
                ApplicationTag(
                    application=application,
                    number=number,
                    major=int(number.split(".")[0]),
                    minor=int(number.split(".")[1]),
                    patch=0,
                    environment=environment,
                    created_by=user,
                )
                for application, number, environment, _members in tag_plans
            ],
            batch_size=2000,
        )
        tag_by = {}
        members = []
        for tag, (application, number, _environment, tagged) in zip(tags, tag_plans, strict=True):
            tag_by[application.pk, number] = tag
            members.extend(
                TagMember(tag=tag, module=entry["module"], version=entry["object"])
                for entry in tagged.values()
            )
        TagMember.objects.bulk_create(members, batch_size=5000)
        EnvironmentTag.objects.bulk_create(
            [
                EnvironmentTag(
                    environment=environment,
                    application=application,
                    tag=tag_by[application.pk, number],
                    changed_at=now,
                )
                for application, environment, number in env_tags.values()
            ],
            batch_size=5000,
        )

        hotfixes = Hotfix.objects.bulk_create(
            [
                Hotfix(
                    application=application,
                    environment=environment,
                    opened_at=now,
                    opened_by=user,
                    solved_at=None if is_open else now,
                    solved_by=None if is_open else user,
                    solved_note="" if is_open else "Merged back into Development.",
                )
                for application, environment, _module, _new, _old, is_open in hotfix_plans
            ]
        )
        HotfixChange.objects.bulk_create(
            [
                HotfixChange(
                    hotfix=hotfix,
                    module=module,
                    version=new["object"],
                    replaced_version=old["object"],
                    at=now,
                )
                for hotfix, (_app, _env, module, new, old, _open) in zip(hotfixes, hotfix_plans, strict=True)
            ]
        )
    return stats


def data_set_size() -> dict[str, int]:
    from hotfixes.models import Hotfix
    from lifecycle.models import (
        Application,
        ApplicationTag,
        CurrentVersion,
        Environment,
        EnvironmentTag,
        Module,
        ModuleVersion,
        TagMember,
    )

    return {
        "applications": Application.objects.count(),
        "environments": Environment.objects.count(),
        "modules": Module.objects.count(),
        "module versions": ModuleVersion.objects.count(),
        "current versions": CurrentVersion.objects.count(),
        "application tags": ApplicationTag.objects.count(),
        "tag members": TagMember.objects.count(),
        "environment tags": EnvironmentTag.objects.count(),
        "open hotfixes": Hotfix.objects.open().count(),
    }


# --------------------------------------------------------------------------- timing


def time_page(client, label: str, runs: int, headers: dict[str, str]) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def render() -> tuple[float, int, bytes]:
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/", **headers)
            content = response.content
            elapsed = time.perf_counter() - started
        if response.status_code != 200:
            body = content[:2000].decode(errors="replace")
            raise RuntimeError(f"{label}: GET / answered {response.status_code}:\n{body}")
        return elapsed, len(queries), content

    render()  # warm-up: template loading and compiling, connection, caches
    timings, query_counts, sizes = [], set(), set()
    for _ in range(runs):
        elapsed, query_count, content = render()
        timings.append(elapsed * 1000)
        query_counts.add(query_count)
        sizes.add(len(content))
    ordered = sorted(timings)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank
    return {
        "label": label,
        "runs": runs,
        "queries": "/".join(str(count) for count in sorted(query_counts)),
        "median": statistics.median(timings),
        "p90": p90,
        "min": ordered[0],
        "size": "/".join(f"{size:,}" for size in sorted(sizes)),
        "gzip": f"{len(gzip.compress(content, compresslevel=6)):,}",
    }


def time_build_rows(user, runs: int) -> float:
    """Median ms of lifecycle.pipeline.build_rows alone (its queries and the in-memory rows)."""
    from lifecycle.access import visible_environments
    from lifecycle.models import Application
    from lifecycle.pipeline import build_rows

    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        build_rows(Application.objects.all(), visible_environments(user))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings[1:])


def profile_render(client, headers: dict[str, str], limit: int) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    client.get("/", **headers)
    profiler.disable()
    for sort in ("cumulative", "tottime"):
        print(f"\n--- cProfile of one render of / ({'htmx fragment' if headers else 'full page'}), by {sort}")
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(sort).print_stats(limit)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=500, help="applications (default 500)")
    parser.add_argument("--modules", type=int, default=10, help="modules per application (default 10)")
    parser.add_argument(
        "--runs", type=int, default=10, help="timed renders of each page, after 1 warm-up (default 10)"
    )
    parser.add_argument(
        "--database-url",
        help=f"PostgreSQL database to use (default {DEFAULT_DATABASE_URL}, dropped and re-created). "
        "Another URL's database is created if missing and dropped at the end only if this run created it; "
        "an existing one must hold no applications.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database at the end")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of one full-page render"
    )
    parser.add_argument(
        "--profile-lines", type=int, default=30, help="lines of each cProfile listing (default 30)"
    )
    args = parser.parse_args(argv)
    if args.apps < 1 or args.modules < 1 or args.runs < 1:
        parser.error("--apps, --modules and --runs must be at least 1")

    database_url = args.database_url or DEFAULT_DATABASE_URL
    name, maintenance_url = _split_database_url(database_url)
    if args.database_url is None:
        _create_database(maintenance_url, name, replace=True)
        created = True
    elif _database_exists(maintenance_url, name):
        created = False
    else:
        _create_database(maintenance_url, name, replace=False)
        created = True

    try:
        configure_django(database_url)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from lifecycle.models import Application

        started = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        migrate_seconds = time.perf_counter() - started
        if Application.objects.exists():
            sys.exit(f"The database {name} already holds applications; give an empty database.")

        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
        started = time.perf_counter()
        variety = build_data(args.apps, args.modules, user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        build_seconds = time.perf_counter() - started
        size = data_set_size()

        client = Client()
        if not client.login(username="bench", password="bench-password"):
            sys.exit("Could not log in as the bench superuser.")

        results = [
            time_page(client, "full page  GET /", args.runs, {}),
            time_page(client, "htmx grid  GET / (HX-Request)", args.runs, {"HTTP_HX_REQUEST": "true"}),
        ]
        build_rows_ms = time_build_rows(user, args.runs)

        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        import django

        print(
            f"Stageboard grid benchmark — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(f"migrate {migrate_seconds:.1f} s, data build {build_seconds:.1f} s")
        print("data set: " + ", ".join(f"{value:,} {key}" for key, value in size.items()))
        print("variety: " + ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in variety.items()))
        print()
        columns = [("page", 34), ("runs", 4), ("queries", 7), ("median ms", 10), ("p90 ms", 8), ("min ms", 8)]
        header = " ".join(f"{name:{'' if width == 34 else '>'}{width}}" for name, width in columns)
        header += f" {'bytes':>12} {'gzip bytes':>11}"
        print(header)
        print("-" * len(header))
        for r in results:
            print(
                f"{r['label']:34} {r['runs']:>4} {r['queries']:>7} {r['median']:>10.1f} {r['p90']:>8.1f} "
                f"{r['min']:>8.1f} {r['size']:>12} {r['gzip']:>11}"
            )
        print(f"\nbuild_rows() alone (its queries + Row objects, no template): median {build_rows_ms:.1f} ms")

        if args.profile:
            profile_render(client, {}, args.profile_lines)
        connection.close()
    finally:
        if created and not args.keep:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: BLE001 - Django may not be set up yet
                pass
            _drop_database(maintenance_url, name)
        elif args.keep or not created:
            print(f"\nkept database {name}: {database_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
