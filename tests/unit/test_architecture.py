"""The house rules that can be checked mechanically: layers, fences, thin launchers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = [ROOT / "spark_jobs" / "trace_job.py", ROOT / "probing" / "probe_job.py"]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed")
    res = subprocess.run([str(exe), "--config", str(ROOT / "setup.cfg")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "broken" not in res.stdout.split("Contracts:")[-1].lower().replace("0 broken", "")


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launchers_are_thin(path: Path) -> None:
    assert path.exists(), f"{path} is missing"
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) < 40
    assert (ast.get_docstring(ast.parse(source)) or "").startswith("Run with:")
    assert "factroots." in source


def test_pure_layers_import_no_heavy_packages() -> None:
    # The fence in setup.cfg checks module imports; this also catches lazy imports in functions.
    heavy = ("pyspark", "torch", "transformers")
    for pkg in ("text", "facts", "label", "report"):
        for f in (ROOT / "src" / "factroots" / pkg).rglob("*.py"):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for n in names:
                    assert n.split(".")[0] not in heavy, f"{f} imports {n}"
