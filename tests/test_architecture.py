"""The arrows between the parts run one way: hotfixes -> lifecycle, and the engine needs no Django."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str):
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", python_files("lifecycle"), ids=lambda p: str(p.relative_to(ROOT)))
def test_lifecycle_never_imports_hotfixes(path):
    offending = {name for name in imported_modules(path) if name.split(".")[0] == "hotfixes"}
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}: plug in through lifecycle.hooks"


@pytest.mark.parametrize(
    "path",
    python_files("hotfixes/engine")
    + [
        ROOT / f"lifecycle/{name}.py"
        for name in ("history_graph", "snapshots", "archives", "version_numbers")
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_algorithms_import_nothing_of_django(path):
    offending = (
        {name for name in imported_modules(path) if name.split(".")[0] in {"django", "lifecycle", "hotfixes"}}
        - {"hotfixes.engine"}
        - {n for n in imported_modules(path) if n.startswith("hotfixes.engine.")}
    )
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"
