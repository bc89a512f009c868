"""The Automation bundle (azure-automation/build_bundle.py): wheels for the Python 3.10 sandbox, with a manifest.

Offline (always): the entry scripts are run as in Automation (plus the managed-identity credential and
every action module) and the files they import are mapped to their distributions; the project's
dependency closure for the target (importlib.metadata, Python 3.10 Linux markers) must cover them, and
a manifest built from wheels of that closure must lack nothing. The project's own wheel is built as the
bundle builds it: it carries no armsim (the simulator), and the bundled requirements name neither
werkzeug nor trustme (the `sim` extra). With RUNBOOKS_BUNDLE_TEST=1 (needs PyPI): the real build runs,
and its wheels are checked (tags, sha256, coverage) and installed offline.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from support.automation import ACCOUNT_ID, VAULT_ID, vm_id
from support.runs import AA_DIR, ROOT, child_env

from armsim import Server

_WRAPPER = """
import atexit, gc, json, os, runpy, sys
out = sys.argv.pop(1)
def dump():
    gc.freeze()  # what was imported is known: spare the interpreter's last collection (no import comes after)
    files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
    with open(out, "w") as f:
        json.dump(files, f)
atexit.register(dump)
os.environ.update(IDENTITY_ENDPOINT="http://127.0.0.1:1/msi/token", IDENTITY_HEADER="x")
from azure.identity import ManagedIdentityCredential
ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001")
from remediations.actions import ACTION_NAMES, get_action
for name in ACTION_NAMES:
    get_action(name)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

_STARTUP = _WRAPPER.split("atexit.register(dump)")[0] + "atexit.register(dump)\n"


@cache
def bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_bundle", AA_DIR / "build_bundle.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ next to the runbooks
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = keep
    return module


@cache
def owners() -> dict[str, str]:
    """Installed file (resolved path) -> the canonical name of the distribution that installed it."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = bundle().canonical(dist.metadata["Name"])
        for f in dist.files or []:
            out[str(Path(str(dist.locate_file(f))).resolve())] = name
    return out


SIMULATOR = {"werkzeug", "trustme"}  # the `sim` extra: armsim's dependencies, never the bundle's


@pytest.fixture(scope="module")
def imported_files(armsim_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The files (resolved) the entry scripts import when run as in Automation (dry runs against armsim)."""
    tmp = tmp_path_factory.mktemp("imports")
    runs = [("fix_backup_failure.py", vm_id("vm-nsg-blocked")), ("preview_change_window.py", VAULT_ID),
            ("fan_out.py", json.dumps([vm_id("vm-healthy")]), f"automation_account={ACCOUNT_ID}",
             "poll_seconds=0.01"),
            ("sweep_backup_failures.py", f"vaults={VAULT_ID}", f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01")]
    files: set[str] = set()
    for i, (script, *args) in enumerate(runs):
        out = tmp / f"modules-{i}.json"
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), str(AA_DIR / script), *args], cwd=tmp,
                              env=child_env(armsim_server), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        files |= {str(Path(f).resolve()) for f in json.loads(out.read_text())}
    armsim_server.sim.reset("demo")
    base = tmp / "modules-startup.json"  # what a bare interpreter imports (site, .pth hooks) is not the runbooks'
    subprocess.run([sys.executable, "-c", _STARTUP, str(base)], cwd=tmp, env=child_env(armsim_server), check=True,
                   timeout=60)
    files -= {str(Path(f).resolve()) for f in json.loads(base.read_text())}
    yield files


@pytest.fixture(scope="module")
def imported(imported_files: set[str]) -> set[str]:
    """The distributions the entry scripts import when run as in Automation."""
    own = owners()
    return {own[f] for f in imported_files if f in own}


@cache
def project() -> tuple[str, str, list[str]]:
    return bundle().read_project()


@cache
def target_closure() -> set[str]:
    return set(bundle().closure(project()[2]))


# --- offline ----------------------------------------------------------------------------------
def test_the_dependency_closure_covers_every_distribution_the_runbooks_import(imported: set[str]) -> None:
    assert {"azure-core", "azure-identity", "msal", "azure-mgmt-compute", "azure-mgmt-automation",
            "pydantic-core", "tenacity", "requests"} <= imported
    assert not imported & {"pytest", "pip", "setuptools", "ruff"}, "test tooling leaked into the runbooks"
    own = bundle().canonical(project()[0])  # the project itself, when it is installed (editable) here
    assert sorted(imported - target_closure() - {own}) == [], "imported but not in the dependency closure"


def test_the_closure_is_evaluated_for_python_3_10_on_linux() -> None:
    b = bundle()
    c = b.closure(["cryptography", 'tomli; python_version < "3.11"', 'pywin32; sys_platform == "win32"'])
    assert "tomli" in c and "pywin32" not in c
    assert "cffi" in c  # cryptography -> cffi (CPython only)
    assert c["cffi"] == "cryptography"


def test_a_manifest_of_the_closure_lacks_nothing_and_a_gap_is_named(tmp_path: Path, imported: set[str]) -> None:
    b = bundle()
    name, version, reqs = project()
    need = target_closure() | imported | {b.canonical(name)}
    for dist in sorted(need):
        (tmp_path / f"{dist.replace('-', '_')}-1.0-py3-none-any.whl").write_bytes(dist.encode())
    manifest = b.make_manifest(tmp_path, name, version, reqs)
    assert b.missing(manifest, need) == set()
    first = manifest["wheels"][0]
    assert first["sha256"] == hashlib.sha256((tmp_path / first["filename"]).read_bytes()).hexdigest()
    (tmp_path / "cffi-1.0-py3-none-any.whl").unlink()
    assert b.missing(b.make_manifest(tmp_path, name, version, reqs), need) == {"cffi"}


@pytest.mark.parametrize("filename, ok", [
    ("requests-2.34.2-py3-none-any.whl", True),
    ("cffi-2.1.1-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("cryptography-50.0.2-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("charset_normalizer-3.5.3-cp310-cp310-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl", True),
    ("pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.whl", False),
    ("pydantic_core-2.50.5-cp310-cp310-win_amd64.whl", False),
    ("markupsafe-3.0.4-cp310-cp310-manylinux_2_28_x86_64.whl", False),
    ("pydantic_core-2.50.5-cp310-cp310-manylinux_2_17_aarch64.whl", False),
    ("cryptography-50.0.2-cp311-abi3-manylinux_2_17_x86_64.whl", False),
    ("tenacity-9.2.1.tar.gz", False),
])
def test_only_wheels_the_python_3_10_linux_sandbox_can_install_pass(filename: str, ok: bool) -> None:
    assert bundle().wheel_tags_ok(filename)[0] is ok


def test_the_download_asks_pip_for_cp310_manylinux_wheels_only(tmp_path: Path) -> None:
    cmd = bundle().pip_download_cmd(project()[2], tmp_path)
    joined = " ".join(cmd)
    for flag in ("--only-binary=:all:", "--platform manylinux2014_x86_64", "--platform manylinux_2_17_x86_64",
                 "--python-version 3.10", "--implementation cp", "--abi cp310", "--abi abi3", "--abi none"):
        assert flag in joined
    assert cmd[-len(project()[2]):] == project()[2]


# --- without the simulator (offline: the project's own wheel only) -----------------------------
@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as build_bundle.py builds it (from a copy of the sources)."""
    before = sorted(p.name for p in ROOT.iterdir())
    wheel = bundle().project_wheel(tmp_path_factory.mktemp("project-wheel"))
    assert sorted(p.name for p in ROOT.iterdir()) == before, "the build left artefacts in the source tree"
    return wheel


def test_the_project_wheel_ships_no_simulator_and_no_armsim_script(project_wheel: Path) -> None:
    with zipfile.ZipFile(project_wheel) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata_text = z.read(f"{info}/METADATA").decode()
        scripts = z.read(f"{info}/entry_points.txt").decode()
    assert "runbooks/cli.py" in names and "remediations/scripts/linux-agent-status.sh" in names
    assert [n for n in names if n.split("/")[0] == "armsim"] == []
    assert "azure-backup-runbooks = runbooks.__main__:run" in scripts and "armsim" not in scripts
    runtime = [ln for ln in metadata_text.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert runtime and not [ln for ln in runtime if any(s in ln.lower() for s in SIMULATOR)], runtime


def test_the_bundled_requirements_name_neither_werkzeug_nor_trustme() -> None:
    b = bundle()
    name, _, reqs = project()
    assert {b.canonical(Requirement(r).name) for r in reqs} & SIMULATOR == set()
    assert target_closure() & SIMULATOR == set(), "the dependency closure pulls in the simulator's server"
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"]
    assert {b.canonical(Requirement(r).name) for r in extras["sim"]} == SIMULATOR
    assert f"{name}[sim]" in extras["dev"], "pip install -e '.[dev]' must bring the simulator for the tests"


def test_the_entry_scripts_import_neither_armsim_nor_its_server(imported_files: set[str]) -> None:
    sim = ROOT.resolve() / "armsim"
    leaked = [f for f in imported_files if Path(f).is_relative_to(sim) or SIMULATOR & set(Path(f).parts)]
    assert leaked == []


# --- the real build (network) -----------------------------------------------------------------
@pytest.mark.skipif(os.environ.get("RUNBOOKS_BUNDLE_TEST") != "1",
                    reason="downloads from PyPI; set RUNBOOKS_BUNDLE_TEST=1 to build the real bundle")
@pytest.mark.timeout(600)
def test_the_real_bundle_installs_offline_and_its_manifest_covers_every_import(tmp_path: Path,
                                                                                imported: set[str]) -> None:
    b = bundle()
    name, version, reqs = project()
    key = hashlib.sha256(json.dumps(reqs).encode()).hexdigest()[:16]
    cache_dir = Path(tempfile.gettempdir()) / f"abr-bundle-cache-{key}"  # reused between runs
    out = tmp_path / "bundle"
    before = sorted(p.name for p in ROOT.iterdir())
    proc = subprocess.run([sys.executable, str(AA_DIR / "build_bundle.py"), "--out", str(out), "--download-cache",
                           str(cache_dir)], capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in ROOT.iterdir()) == before, "the build left artefacts in the source tree"
    manifest = json.loads((out / "manifest.json").read_text())
    files = {f.name for f in out.iterdir()} - {"manifest.json", "packages.json"}
    assert files == {w["filename"] for w in manifest["wheels"]}
    for w in manifest["wheels"]:
        assert b.wheel_tags_ok(w["filename"])[0], w["filename"]
        assert hashlib.sha256((out / w["filename"]).read_bytes()).hexdigest() == w["sha256"]
    assert b.missing(manifest, target_closure() | imported | {b.canonical(name)}) == set()
    packages = json.loads((out / "packages.json").read_text())
    assert [p["file"] for p in packages] == [w["filename"] for w in manifest["wheels"]]
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--dry-run", "--ignore-installed",
         "--no-index", "--find-links", str(out), "--only-binary=:all:", "--python-version", "3.10",
         "--implementation", "cp", "--abi", "cp310", "--abi", "abi3", "--abi", "none",
         "--platform", "manylinux2014_x86_64", "--target", str(tmp_path / "never"), f"{name}=={version}"],
        capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Would install" in install.stdout
