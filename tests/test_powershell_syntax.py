"""Every .ps1 in the repository parses with a real PowerShell grammar (issue #8 item 5).

This machine has no PowerShell, so the scripts (the relay runbook and the Run Command scripts) are parsed
with the tree-sitter PowerShell grammar (PyPI `tree-sitter-powershell`): any ERROR or MISSING node fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"}
PARSER = Parser(Language(tree_sitter_powershell.language()))


def ps1_files() -> list[Path]:
    """Every .ps1 under the repository root, outside tool and environment folders."""
    return sorted(p for p in ROOT.rglob("*.ps1")
                  if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts[:-1]))


def syntax_errors(source: bytes) -> list[str]:
    """One line per ERROR or MISSING node of the parse tree, with its 1-based line and column."""
    out: list[str] = []
    stack: list[Node] = [PARSER.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            row, col = node.start_point
            kind = f"missing {node.type}" if node.is_missing else "syntax error"
            text = source[node.start_byte:node.end_byte].decode("utf-8", "replace").splitlines()
            out.append(f"{row + 1}:{col + 1}: {kind}" + (f" near {text[0][:60]!r}" if text else ""))
        stack.extend(reversed(node.children))
    return sorted(out, key=lambda s: tuple(int(x) for x in s.split(":")[:2]))


def test_the_repository_has_its_powershell_scripts() -> None:
    names = {p.name for p in ps1_files()}
    assert {"windows-agent-restart.ps1", "windows-vss-set.ps1"} <= names  # the Run Command scripts are found
    assert all(not SKIP_DIRS.intersection(p.relative_to(ROOT).parts) for p in ps1_files())


@pytest.mark.parametrize("path", ps1_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_script_parses(path: Path) -> None:
    source = path.read_bytes()
    assert source.strip(), f"{path.name} is empty"
    assert syntax_errors(source) == [], f"{path.relative_to(ROOT)} does not parse as PowerShell"


GOOD = b"""param([Parameter(Mandatory = $false)][object] $WebhookData)
$body = ConvertFrom-Json -InputObject $WebhookData.RequestBody
if ($body.schemaId -ne 'azureMonitorCommonAlertSchema') { Write-Output 'not an alert'; return }
$h = @{ Authorization = "Bearer $token"; 'Content-Type' = 'application/json' }
foreach ($x in @(1, 2)) { try { Write-Output $x } catch { Write-Error $_ } }
"""


@pytest.mark.parametrize("broken", [
    b"if ($x { Write-Output 1 }\n",                      # unclosed parenthesis
    b"function f {\n  Write-Output 1\n",                # unclosed script block
    b'$x = "never closed\nWrite-Output $x\n',            # unterminated string
    b"$h = @{ a = 1; b = }\n",                           # hashtable entry without a value
    b"$x = 1 +\n",                                       # operator without its right operand
    b"Write-Output 1 }\n",                               # stray closing brace
], ids=["paren", "block", "string", "hashtable", "operand", "brace"])
def test_a_syntax_error_fails(broken: bytes) -> None:
    assert syntax_errors(GOOD) == []
    assert syntax_errors(GOOD + broken) != []
