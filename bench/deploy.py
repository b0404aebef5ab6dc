"""Benchmark of Tag & Deploy of one large application on PostgreSQL.

Builds, in a database of its own, an application of MODULES modules released
as 1.0 in every environment, with a second version of every module published
in Development (so Development shows 1.0+). Then times the three steps of a
deployment, validate(), start_deployment() and run_deployment(), for
Tag & Deploy 1.1 Development -> Quality Assurance, and again, after a third
version of every module in Development, for Tag & Deploy 1.2 Development ->
Pre-Production (the same work in a warm process: the steady state). Each step
is reported in ms with its SQL queries. Last, an application of SMALL modules
goes through the same Tag & Deploy into Quality Assurance to show that the
number of queries does not depend on the number of modules.

    .venv/bin/python bench/deploy.py                        # 500 modules, compared with 50
    .venv/bin/python bench/deploy.py --modules 2000 --small 20

See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grid import (  # noqa: E402  (the shared database helpers of the grid benchmark)
    DEFAULT_DATABASE_URL,
    _create_database,
    _drop_database,
    _split_database_url,
    configure_django,
)

PIPELINE = [  # name, position, is_production
    ("Development", 1, False),
    ("Quality Assurance", 2, False),
    ("Pre-Production", 3, False),
    ("Production", 4, True),
]


# --------------------------------------------------------------------------- data set


def build_application(name: str, module_count: int, environments, user):
    """An application released as 1.0 everywhere, with version 2 of every module in Development."""
    from django.db import transaction
    from django.utils import timezone

    from lifecycle.models import (
        Application,
        ApplicationTag,
        CurrentVersion,
        EnvironmentTag,
        Module,
        ModuleChange,
        TagMember,
    )

    now = timezone.now()
    dev = environments[0]
    with transaction.atomic():
        application = Application.objects.create(name=name, description="Deployment benchmark")
        modules = Module.objects.bulk_create(
            [Module(application=application, name=f"{name}-m{index:04d}") for index in range(module_count)],
            batch_size=2000,
        )
        v1 = create_versions(modules, dev, user, "v1", parents=None)
        tag = ApplicationTag.objects.create(
            application=application,
            number="1.0",
            major=1,
            minor=0,
            patch=0,
            environment=dev,
            created_by=user,
        )
        TagMember.objects.bulk_create(
            [TagMember(tag=tag, module=module, version=v1[module.pk]) for module in modules], batch_size=5000
        )
        CurrentVersion.objects.bulk_create(
            [
                CurrentVersion(
                    environment=environment,
                    module=module,
                    version=v1[module.pk],
                    changed_at=now,
                    changed_by=user,
                )
                for environment in environments
                for module in modules
            ],
            batch_size=5000,
        )
        ModuleChange.objects.bulk_create(
            [
                ModuleChange(
                    environment=environment,
                    module=module,
                    version=v1[module.pk],
                    kind=ModuleChange.Kind.PUBLISH if environment == dev else ModuleChange.Kind.DEPLOY,
                    user=user,
                    at=now,
                )
                for environment in environments
                for module in modules
            ],
            batch_size=5000,
        )
        EnvironmentTag.objects.bulk_create(
            [
                EnvironmentTag(environment=environment, application=application, tag=tag, changed_at=now)
                for environment in environments
            ]
        )
    publish_everything(application, modules, dev, user, "v2")
    return application, modules


def create_versions(modules, environment, user, label: str, parents) -> dict:
    """One new version of each module (one small file of its own); module id -> ModuleVersion."""
    from lifecycle.models import Blob, ModuleFile, ModuleVersion
    from lifecycle.snapshots import content_hash, tree_hash

    contents = {
        module.pk: f"# {module.name} {label}\nprint({module.name!r}, {label!r})\n".encode()
        for module in modules
    }
    digests = {pk: content_hash(data) for pk, data in contents.items()}
    Blob.objects.bulk_create(
        [Blob(hash=digests[pk], data=data, size=len(data), is_binary=False) for pk, data in contents.items()],
        batch_size=2000,
    )
    versions = ModuleVersion.objects.bulk_create(
        [
            ModuleVersion(
                module=module,
                number=parents[module.pk].number + 1 if parents else 1,
                parent=parents[module.pk] if parents else None,
                tree_hash=tree_hash({"main.py": digests[module.pk]}),
                file_count=1,
                total_size=len(contents[module.pk]),
                comment=f"benchmark {label}",
                published_in=environment,
                created_by=user,
            )
            for module in modules
        ],
        batch_size=2000,
    )
    ModuleFile.objects.bulk_create(
        [
            ModuleFile(version=version, path="main.py", blob_id=digests[version.module_id])
            for version in versions
        ],
        batch_size=2000,
    )
    return {version.module_id: version for version in versions}


def publish_everything(application, modules, environment, user, label: str) -> None:
    """What publishing a new version of every module into `environment` leaves behind, in bulk."""
    from django.db import transaction
    from django.utils import timezone

    from lifecycle.models import CurrentVersion, ModuleChange

    now = timezone.now()
    with transaction.atomic():
        rows = list(
            CurrentVersion.objects.select_related("version").filter(
                environment=environment, module__application=application
            )
        )
        parents = {row.module_id: row.version for row in rows}
        created = create_versions(modules, environment, user, label, parents)
        for row in rows:
            row.version, row.changed_at, row.changed_by = created[row.module_id], now, user
        CurrentVersion.objects.bulk_update(rows, ["version", "changed_at", "changed_by"], batch_size=2000)
        ModuleChange.objects.bulk_create(
            [
                ModuleChange(
                    environment=environment,
                    module_id=module_id,
                    previous_version=parents[module_id],
                    version=version,
                    kind=ModuleChange.Kind.PUBLISH,
                    user=user,
                    at=now,
                )
                for module_id, version in created.items()
            ],
            batch_size=5000,
        )


# --------------------------------------------------------------------------- timing


def timed(step: str, call):
    """Run `call()`; return its result and (step, ms, queries, ms of SQL)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - started
    sql_ms = 1000 * sum(float(query["time"]) for query in queries.captured_queries)
    return result, (step, 1000 * elapsed, len(queries), sql_ms)


def tag_and_deploy(application, source, target, user) -> tuple[str, list[tuple]]:
    """Validate, start and run Tag & Deploy of `application`; return its label and the timed steps."""
    from lifecycle import access
    from lifecycle.deploying.running import run_deployment, start_deployment
    from lifecycle.deploying.validation import validate
    from lifecycle.models import Deployment

    access.forget_cached_levels(user)  # Every round pays for the access check, as a request would.
    validation, validate_step = timed("validate()", lambda: validate(source, target, [application]))
    (item,) = validation.items
    if validation.has_errors or validation.needs_confirmation or not item.needs_tag:
        sys.exit(f"Unexpected plan for {application.name}: {[f.message for f in validation.findings]}")
    deployment, start_step = timed(
        "start_deployment()",
        lambda: start_deployment(
            source, target, [application], user=user, fingerprint=validation.fingerprint, notes="bench"
        ),
    )
    deployment, run_step = timed("run_deployment()", lambda: run_deployment(deployment.pk))
    if deployment.status != Deployment.Status.FINISHED:
        log = "\n".join(deployment.log_lines.values_list("message", flat=True))
        sys.exit(f"Deployment {deployment.pk} ended {deployment.status}:\n{log}")
    changed = deployment.items.get().modules_changed
    label = f"{item.action_label}  {source.name} → {target.name}  ({changed} modules switched)"
    steps = [validate_step, start_step, run_step]
    total = ("total", sum(s[1] for s in steps), sum(s[2] for s in steps), sum(s[3] for s in steps))
    return label, [*steps, total]


def profiled(call):
    """Run `call()` under cProfile and with its queries captured; print both, slowest first."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    profile = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        result = profile.runcall(call)
    print("\nround 2 under cProfile (timings inflated by the profiler), by cumulative time:")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(40)
    print("slowest queries of round 2 (ms, SQL cut at 160 characters):")
    slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:15]
    for query in slowest:
        print(f"  {1000 * float(query['time']):7.1f}  {query['sql'][:160]}")
    return result


def print_round(title: str, label: str, steps: list[tuple]) -> None:
    print(f"\n{title}: {label}")
    print(f"  {'step':20} {'ms':>9} {'queries':>8} {'SQL ms':>8}")
    for step, ms, queries, sql_ms in steps:
        print(f"  {step:20} {ms:>9.1f} {queries:>8} {sql_ms:>8.1f}")


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modules", type=int, default=500, help="modules of the application (default 500)")
    parser.add_argument(
        "--small",
        type=int,
        default=50,
        help="modules of the application to compare queries with (default 50)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_deploy"),
        help="PostgreSQL database to use, dropped and re-created, and dropped at the end "
        "(default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of round 2 and its slowest queries",
    )
    options = parser.parse_args(argv)
    if options.modules < 1 or options.small < 1:
        parser.error("--modules and --small must be at least 1")

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    try:
        configure_django(options.database_url)
        import django
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from lifecycle.models import Environment

        call_command("migrate", verbosity=0, interactive=False)
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
        environments = Environment.objects.bulk_create(
            [Environment(name=n, position=p, is_production=prod) for n, p, prod in PIPELINE]
        )
        dev, qa, pre, _ = environments

        started = time.perf_counter()
        large, large_modules = build_application("Large", options.modules, environments, user)
        small, _ = build_application("Small", options.small, environments, user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        build_seconds = time.perf_counter() - started

        print(
            f"Stageboard deployment benchmark — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(
            f"data build {build_seconds:.1f} s: applications Large ({options.modules} modules) and "
            f"Small ({options.small} modules), each released as 1.0 in 4 environments, "
            "version 2 of every module in Development (1.0+)"
        )

        label, first = tag_and_deploy(large, dev, qa, user)
        print_round(f"1. {options.modules} modules, first deployment", label, first)

        publish_everything(large, large_modules, dev, user, "v3")  # Development shows 1.1+ again.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # As autovacuum would after those writes.
        if options.profile:
            label, second = profiled(lambda: tag_and_deploy(large, dev, pre, user))
        else:
            label, second = tag_and_deploy(large, dev, pre, user)
        print_round(f"2. {options.modules} modules, again (steady state)", label, second)

        label, small_steps = tag_and_deploy(small, dev, qa, user)
        print_round(f"3. {options.small} modules", label, small_steps)

        print(f"\nqueries per step, {options.small} vs {options.modules} modules:")
        same = True
        for (step, _, few, _), (_, _, many, _) in zip(small_steps, first, strict=True):
            same &= few == many
            print(f"  {step:20} {few:>4} vs {many:<4} {'equal' if few == many else 'DIFFERENT'}")
        print("the same number of queries" if same else "the number of queries depends on the modules")
        connection.close()
        return 0 if same else 1
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
