"""The layers hold: import-linter keeps the contracts of pyproject.toml, and refuses a
domain module that reaches for an adapter or for a database driver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "schemas")
    for package in ("contracts", "services"):
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_layer_contract(tmp_path: Path) -> None:
    result = lint_imports(tree_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "services.domain.collection.rules",
            "from services.adapters.eventstore import store as _store",
            "services.domain is not allowed to import services.adapters",
        ),
        (
            "services.domain.kernel.records",
            "import asyncpg as _asyncpg",
            "services.domain is not allowed to import asyncpg",
        ),
        (
            "services.adapters.runtime.handler",
            "from services.tools.audit import replay as _replay",
            "services.adapters is not allowed to import services.tools",
        ),
        (
            "contracts.topics",
            "from services.domain import catalog as _catalog",
            "contracts is not allowed to import services.domain",
        ),
        (
            "services.domain.registry.registry",
            "from services.domain.collection import rules as _rules",
            "services.domain.registry is not allowed to import services.domain.collection",
        ),
    ],
)
def test_an_import_against_the_layers_breaks_the_build(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    root = tree_copy(tmp_path)
    plant(root, module, line)
    result = lint_imports(root)
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split()), result.stdout
