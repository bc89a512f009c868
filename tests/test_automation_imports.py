"""The rooms of the Automation side: entry scripts import only the stdlib and `runbooks`; the adapter calls no SDK client."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "azure-automation").glob("*.py"))
ADAPTER = sorted((ROOT / "runbooks" / "automation").glob("*.py"))
# build_bundle.py runs on the build machine, not in Automation: it reads wheel tags with packaging (or pip's copy).
BUILD_TOOL = {"build_bundle.py": {"packaging", "pip"}}


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_there_are_entry_scripts() -> None:
    assert {p.name for p in SCRIPTS} >= {"fix_backup_failure.py", "fan_out.py", "preview_change_window.py",
                                          "sweep_backup_failures.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_entry_scripts_import_only_the_stdlib_and_runbooks(script: Path) -> None:
    wrong = [f"{script.name}:{line} imports {mod}" for line, mod in imported(script)
             if mod != "runbooks" and mod not in sys.stdlib_module_names
             and mod not in BUILD_TOOL.get(script.name, set())]
    assert wrong == []


@pytest.mark.parametrize("module", ADAPTER, ids=lambda p: p.name)
def test_the_adapter_touches_no_sdk_client(module: Path) -> None:
    """Azure calls go through remediations (the client layer): no `azure.<client>.` attribute here."""
    text = module.read_text(encoding="utf-8")
    hits = re.findall(r"\bazure\.(?:automation|compute|network|backup|health)\.\w+", text)
    assert hits == [], f"{module.name}: {hits}"
    assert all(mod != "azure" for _, mod in imported(module)), f"{module.name} imports an SDK"
