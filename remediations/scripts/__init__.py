"""The fixed Run Command scripts (see docs/run-command-scripts.md) and the parser for their output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

__all__ = ["SCRIPTS", "Script", "ScriptOutputError", "lines", "output_text", "parse_result", "script"]

RESULT_PREFIX = "RUNBOOKS_RESULT "

# id -> whether the script changes the guest (the contract's "changes the guest" column).
_MUTATING: dict[str, bool] = {
    "linux-agent-status": False,
    "linux-agent-restart": True,
    "linux-agent-upgrade": True,
    "windows-vss-get": False,
    "windows-vss-set": True,
    "windows-agent-restart": True,
    "windows-provider-get": False,
    "windows-provider-enable": True,
    "linux-proxy-get": False,
    "linux-proxy-set": True,
    "linux-vmbackup-conf-get": False,
    "linux-vmbackup-conf-set": True,
    "windows-proxy-get": False,
    "windows-proxy-set": True,
    "windows-vss-writers-get": False,
    "windows-vss-writers-restart": True,
    "windows-vss-restart": True,
    "windows-vss-writers-nothreads": True,
    "windows-crypto-get": False,
    "windows-crypto-set": True,
    "windows-bcdr-keys-get": False,
    "windows-bcdr-keys-set": True,
    "windows-com-get": False,
    "windows-com-start": True,
    "windows-msdtc-repair": True,
}


LIB_MARKER = "# @lib\n"


def _lib() -> str:
    """The shared Linux helpers (scripts/_lib.sh), inlined so every script sent is self-contained."""
    return resources.files(__name__).joinpath("_lib.sh").read_text(encoding="utf-8")


class ScriptOutputError(ValueError):
    """Run Command output without a usable `RUNBOOKS_RESULT {json}` line."""


@dataclass(frozen=True)
class Script:
    """One fixed Run Command script."""

    id: str
    os: Literal["Linux", "Windows"]
    command_id: Literal["RunShellScript", "RunPowerShellScript"]
    text: str
    mutating: bool


def _load(script_id: str, mutating: bool) -> Script:
    """Read a script's text from the package files."""
    linux = script_id.startswith("linux-")
    name = f"{script_id}.sh" if linux else f"{script_id}.ps1"
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    if linux:
        text = text.replace(LIB_MARKER, _lib(), 1)
        return Script(script_id, "Linux", "RunShellScript", text, mutating)
    return Script(script_id, "Windows", "RunPowerShellScript", text, mutating)


SCRIPTS: dict[str, Script] = {sid: _load(sid, mutating) for sid, mutating in _MUTATING.items()}


def script(script_id: str) -> Script:
    """The script with this id; KeyError naming the known ids otherwise."""
    try:
        return SCRIPTS[script_id]
    except KeyError:
        raise KeyError(f"unknown Run Command script {script_id!r}; known: {', '.join(sorted(SCRIPTS))}") from None


def lines(script_id: str) -> list[str]:
    """The script's text as the list of lines Run Command's `script` array takes."""
    return script(script_id).text.splitlines()


def parse_result(output: str) -> dict[str, Any]:
    """The JSON object on the last line starting with `RUNBOOKS_RESULT ` in `output`."""
    found = [line for line in (output or "").splitlines() if line.startswith(RESULT_PREFIX)]
    if not found:
        raise ScriptOutputError(f"no {RESULT_PREFIX.strip()} line in the script output: {_tail(output)!r}")
    payload = found[-1][len(RESULT_PREFIX) :]
    try:
        result = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ScriptOutputError(f"{RESULT_PREFIX.strip()} line is not valid JSON ({exc}): {payload!r}") from exc
    if not isinstance(result, dict):
        raise ScriptOutputError(f"{RESULT_PREFIX.strip()} line is not a JSON object: {payload!r}")
    return result


def output_text(statuses: list[dict[str, Any]]) -> tuple[str, str]:
    """(stdout, stderr) from a Run Command result's `value` status list, Windows or Linux style."""
    stdout = stderr = None
    for status in statuses or []:
        code = str(status.get("code") or "")
        message = str(status.get("message") or "")
        if code.startswith("ComponentStatus/StdOut/"):
            stdout = message
        elif code.startswith("ComponentStatus/StdErr/"):
            stderr = message
        elif code.startswith("ProvisioningState/"):
            return _split_linux(message)
    if stdout is None and stderr is None:
        codes = [s.get("code") for s in statuses or []]
        raise ScriptOutputError(f"no StdOut/StdErr or ProvisioningState status in the Run Command result: {codes}")
    return stdout or "", stderr or ""


def _split_linux(message: str) -> tuple[str, str]:
    """Split `Enable succeeded: \\n[stdout]\\n<out>\\n[stderr]\\n<err>` into (out, err)."""
    marker = "[stdout]\n"
    start = message.find(marker)
    if start < 0:
        return message, ""
    body = message[start + len(marker) :]
    out, sep, err = body.rpartition("\n[stderr]\n")  # the last marker: stdout ends with the result line
    if not sep:
        out, err = body.removesuffix("\n[stderr]"), ""
    return out, err


def _tail(text: str | None, limit: int = 300) -> str:
    """The last `limit` characters of text, for error messages."""
    text = text or ""
    return text if len(text) <= limit else "…" + text[-limit:]
