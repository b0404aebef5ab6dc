"""How long checking and laying out deep module paths takes, at growing depths.

Both were quadratic in a path's length (5,000 files under 500 folders: 6 s to check, 10 s to lay
out on the module page). Linear work doubles with the depth; quadratic work quadruples.

    DEBUG=true .venv/bin/python bench/paths.py
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from lifecycle.archives import check_files  # noqa: E402
from lifecycle.publishing import content_limits  # noqa: E402
from lifecycle.views import _file_tree  # noqa: E402


def timed(function, *args):
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - started)
    return best


def main():
    limits = content_limits()
    print(f"{'depth':>6} {'check_files':>12} {'file tree':>10}")
    for depth in (125, 250, 500):
        paths = ["a/" * depth + f"f{n}" for n in range(5000)]
        check = timed(check_files, dict.fromkeys(paths, b""), limits)
        tree = timed(_file_tree, [{"path": path} for path in paths])
        print(f"{depth:>6} {check:>11.3f}s {tree:>9.3f}s")


if __name__ == "__main__":
    main()
