"""Benchmark of publishing a large module zip, then publishing it again unchanged.

Builds a 1,000-file, 10 MB module zip (text and binary files), publishes it
through the same path the upload form and the API use (read_archive, then
publish) into a fresh PostgreSQL database, and publishes the same zip again.
The second publish must store no new file content and create no version.

    .venv/bin/python bench/publish.py
    .venv/bin/python bench/publish.py --files 2000 --megabytes 20
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grid import (  # noqa: E402  (the shared database helpers of the grid benchmark)
    DEFAULT_DATABASE_URL,
    _create_database,
    _drop_database,
    _split_database_url,
    configure_django,
)


def make_zip(files: int, total_bytes: int, seed: int = 7) -> bytes:
    """A module of `files` files adding up to about `total_bytes`: 80% source text, 20% binary."""
    rng = random.Random(seed)
    size = total_bytes // files
    buffer = io.BytesIO()
    words = ["cart", "order", "total", "price", "line", "quantity", "discount", "return", "self", "def"]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(files):
            folder = f"pkg{index % 20}"
            if index % 5 == 0:
                archive.writestr(f"{folder}/asset{index}.bin", rng.randbytes(size))
            else:
                lines, length = [], 0
                while length < size:
                    line = "    " + " ".join(rng.choice(words) for _ in range(8)) + f"  # {index}\n"
                    lines.append(line)
                    length += len(line)
                archive.writestr(f"{folder}/module{index}.py", "".join(lines)[:size])
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--megabytes", type=float, default=10)
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_publish")
    )
    options = parser.parse_args(argv)

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    try:
        configure_django(options.database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from lifecycle.archives import read_archive
        from lifecycle.models import Application, Blob, Environment, Module, ModuleVersion
        from lifecycle.publishing import content_limits, publish

        environment = Environment.objects.create(name="Development", position=1)
        application = Application.objects.create(name="Bench")
        module = Module.objects.create(application=application, name="Big")
        data = make_zip(options.files, int(options.megabytes * 1024 * 1024))
        print(
            f"zip: {options.files} files, {options.megabytes:g} MB uncompressed, "
            f"{len(data) / 1e6:.1f} MB compressed"
        )

        twin = Module.objects.create(application=application, name="BigTwin")
        for attempt, target in (
            ("first publish", module),
            ("same zip again", module),
            ("another module", twin),
        ):
            blobs_before = Blob.objects.count()
            versions_before = ModuleVersion.objects.count()
            started = time.perf_counter()
            files = read_archive(data, content_limits())
            read = time.perf_counter()
            result = publish(target, environment, files, comment=attempt)
            done = time.perf_counter()
            print(
                f"{attempt:15}  total {1000 * (done - started):7.0f} ms  "
                f"(read zip {1000 * (read - started):5.0f} ms, "
                f"publish {1000 * (done - read):6.0f} ms)  created={result.created}  "
                f"new blobs={Blob.objects.count() - blobs_before}  new versions="
                f"{ModuleVersion.objects.count() - versions_before}"
            )
    finally:
        from django.db import connections

        connections.close_all()
        _drop_database(maintenance, name)
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
