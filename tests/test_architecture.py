"""The architecture, enforced: import-linter's contracts in pyproject.toml hold, and they
fail when a forbidden import is added (a lazy one inside a function included)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "export", "kiosk_app")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )


def test_contracts_are_kept():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("runtime/search.py", "import vitrina.export.build", "vitrina.runtime.search -> vitrina.export.build"),
        (
            "runtime/bundle.py",
            "def _late():\n    from vitrina.runtime.bench import benchmark",
            "vitrina.runtime.bundle -> vitrina.runtime.bench.benchmark",
        ),
        (
            "export/build.py",
            "def _late():\n    import vitrina.kiosk_app.app",
            "vitrina.export.build -> vitrina.kiosk_app.app",
        ),
        ("runtime/photo.py", "def _late():\n    import faiss", "vitrina.runtime.photo -> faiss"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str):
    """Copy the packages into a ``vitrina`` namespace folder (as the install maps them), add one
    forbidden import, and lint the copy: it comes first on sys.path."""
    root = tmp_path / "vitrina"
    root.mkdir()
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n\n{line}\n", encoding="utf-8")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert broken in proc.stdout.replace("\n", " ").replace("  ", " "), proc.stdout


def test_every_runtime_module_is_placed_in_a_layer():
    """A new top-level runtime module must be named in the device-core contract (or live in bench/ or sync/)."""
    core = set(_contracts()["device-core"]["source_modules"])
    found = {f"vitrina.runtime.{p.stem}" for p in (REPO / "runtime").glob("*.py") if p.stem != "__init__"}
    found |= {f"vitrina.runtime.{p.name}" for p in (REPO / "runtime").iterdir() if (p / "__init__.py").is_file()}
    assert found - core - {"vitrina.runtime.bench", "vitrina.runtime.sync"} == set()
    assert core - found == set(), "the contract names modules that no longer exist"


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(REPO)}:{node.lineno} imports {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


def test_no_private_name_is_imported_across_modules():
    found = [
        hit for package in PACKAGES for path in sorted((REPO / package).rglob("*.py")) for hit in _private_imports(path)
    ]
    assert found == []
