"""Build the wheels an Azure Automation Python 3.10 runtime environment needs, with a manifest.

    python azure-automation/build_bundle.py [--out DIR] [--download-cache DIR]

Automation's Python 3.10 sandboxes are Linux x86_64 and install wheels only (no sdists, no resolver):
every distribution the runbooks import must be uploaded as a package. This downloads the project's
runtime dependencies (read from pyproject.toml) as cp310 / abi3 / none wheels for manylinux2014
x86_64 (or py3-none-any), builds the project's own wheel from a copy of the sources (no build
artefacts in the tree; without armsim, the test simulator, and its `armsim` script: production carries
neither it nor its `sim` extra's werkzeug and trustme), checks every file's tags, and writes:

- manifest.json: the target, the requirements, and per wheel: name, version, filename, sha256, size;
- packages.json: [{"name", "file"}] for the ARM template's `packages` parameter (see README.md).

Needs network access to PyPI (or a configured index). Exit 0 on success, 1 on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.10"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
ABIS = ("cp310", "abi3", "none")
# The environment Automation's Python 3.10 sandbox evaluates requirement markers in.
TARGET_ENV = {"python_version": "3.10", "python_full_version": "3.10.12", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "platform_release": "", "platform_version": "", "implementation_version": "3.10.12"}
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")
_SAVED = re.compile(r"(?:Saved|File was already downloaded)\s+(\S+\.whl)")
PACKAGES = ("remediations", "runbooks")  # what the project wheel ships; armsim (tests, demo) stays out
SIMULATOR = "armsim"


def _packaging() -> Any:
    try:
        import packaging.markers
        import packaging.requirements
        import packaging.utils

        return packaging
    except ImportError:  # pip always vendors it
        import pip._vendor.packaging as vendored  # type: ignore[import-not-found]
        import pip._vendor.packaging.markers  # noqa: F401  # type: ignore[import-not-found]
        import pip._vendor.packaging.requirements  # noqa: F401  # type: ignore[import-not-found]
        import pip._vendor.packaging.utils  # noqa: F401  # type: ignore[import-not-found]

        return vendored


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (azure_core -> azure-core)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_project(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str, list[str]]:
    """(name, version, runtime requirements) from pyproject.toml."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib

        project = tomllib.loads(text)["project"]
        return project["name"], project["version"], list(project.get("dependencies") or [])
    except ImportError:  # Python 3.10: a narrow reader for the [project] table's three keys
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        name = re.search(r'^name\s*=\s*"([^"]+)"', section, re.M)
        version = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
        block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", section, re.M | re.S)
        if not (name and version and block):
            raise SystemExit("cannot read name/version/dependencies from pyproject.toml") from None
        deps = re.findall(r'^\s*"([^"]+)"', block.group(1), re.M)
        return name.group(1), version.group(1), deps


def closure(requirements: list[str], env: dict[str, str] | None = None) -> dict[str, str | None]:
    """Every distribution the requirements pull in for the target: canonical name -> the one that required it.

    Recurses through the metadata of locally installed distributions (importlib.metadata), evaluating
    markers for the target (Python 3.10, Linux x86_64); a distribution not installed here is listed
    but not expanded.
    """
    from importlib import metadata

    pk = _packaging()
    env = env or TARGET_ENV
    seen: dict[str, str | None] = {}
    expanded: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, str | None]] = [(r, None) for r in requirements]
    while todo:
        text, parent = todo.pop()
        req = pk.requirements.Requirement(text)
        if parent is None and req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name, extras = canonical(req.name), frozenset(req.extras)
        seen.setdefault(name, parent)
        if (name, extras) in expanded:
            continue
        expanded.add((name, extras))
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for sub in requires:
            sreq = pk.requirements.Requirement(sub)
            if sreq.marker is not None and not any(sreq.marker.evaluate({**env, "extra": e}) for e in {"", *extras}):
                continue
            todo.append((sreq.name + (f"[{','.join(sorted(sreq.extras))}]" if sreq.extras else ""), name))
    return seen


def wheel_tags_ok(filename: str) -> tuple[bool, str]:
    """Whether a file is a wheel the Python 3.10 Linux x86_64 sandbox can install, and why not."""
    m = _WHEEL.match(filename)
    if not m:
        return False, "not a wheel (sdists cannot be installed by Automation)"
    pys, abis, plats = (set(m.group(k).split(".")) for k in ("py", "abi", "plat"))
    py_ok = bool(pys & {"py3", "py310", "cp310", "py2.py3"}) or any(
        p.startswith("cp3") and p[3:].isdigit() and int(p[3:]) <= 10 and "abi3" in abis for p in pys)
    abi_ok = bool(abis & set(ABIS))
    plat_ok = "any" in plats or any(_manylinux_ok(p) for p in plats)
    if not (py_ok and abi_ok and plat_ok):
        return False, f"tags {m.group('py')}-{m.group('abi')}-{m.group('plat')} do not fit cp310 manylinux x86_64"
    return True, ""


def _manylinux_ok(plat: str) -> bool:
    if not plat.endswith("_x86_64"):
        return False
    if plat.startswith(("manylinux1", "manylinux2010", "manylinux2014")):
        return True
    m = re.match(r"manylinux_(\d+)_(\d+)_x86_64$", plat)
    return bool(m and (int(m.group(1)), int(m.group(2))) <= (2, 17))


def pip_download_cmd(requirements: list[str], dest: Path) -> list[str]:
    """The pip download command for the target (wheels only)."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", PYTHON_VERSION, "--implementation", "cp", "--dest", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    for a in ABIS:
        cmd += ["--abi", a]
    return cmd + requirements


def make_manifest(out: Path, name: str, version: str, requirements: list[str]) -> dict[str, Any]:
    """manifest.json's content for the wheels in `out`; raises SystemExit for a file that does not fit."""
    wheels = []
    for f in sorted(out.iterdir()):
        if f.name in ("manifest.json", "packages.json"):
            continue
        ok, why = wheel_tags_ok(f.name)
        if not ok:
            raise SystemExit(f"{f.name}: {why}")
        m = _WHEEL.match(f.name)
        assert m is not None
        wheels.append({"name": canonical(m.group("name")), "version": m.group("version"), "filename": f.name,
                       "sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "size": f.stat().st_size})
    return {"format": "azure-backup-runbooks/bundle@1", "project": {"name": name, "version": version},
            "target": {"python": PYTHON_VERSION, "implementation": "cp", "abis": list(ABIS),
                       "platforms": list(PLATFORMS)},
            "requirements": requirements, "wheels": wheels}


def missing(manifest: dict[str, Any], names: set[str]) -> set[str]:
    """The distributions (canonical names) the manifest lacks."""
    have = {canonical(w["name"]) for w in manifest.get("wheels") or []}
    return {canonical(n) for n in names} - have


def production_pyproject(text: str) -> str:
    """pyproject.toml for the production wheel: no armsim package, package data or console script."""
    lines = [ln for ln in text.splitlines(keepends=True) if not re.match(rf"\s*{SIMULATOR}\s*=", ln)]
    return re.sub(rf'"{SIMULATOR}\*",\s*', "", "".join(lines))


def project_wheel(out: Path) -> Path:
    """Build the project's own wheel into `out` from a copy of the sources without armsim; its path."""
    with tempfile.TemporaryDirectory(prefix="abr-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "pyproject.toml").write_text(production_pyproject((ROOT / "pyproject.toml").read_text("utf-8")),
                                            encoding="utf-8")
        for extra in ("README.md", "LICENSE"):
            if (ROOT / extra).exists():
                shutil.copy2(ROOT / extra, src)
        for pkg in PACKAGES:
            shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        built = Path(tmp) / "wheel"
        _pip(["wheel", "--disable-pip-version-check", "--no-deps", "--wheel-dir", str(built), str(src)])
        (wheel,) = built.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(str(wheel), str(out / wheel.name)))


def _pip(args: list[str]) -> str:
    cmd = args if args[0] == sys.executable else [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"pip failed ({proc.returncode}): {' '.join(cmd[3:6])} …\n{tail}")
    return proc.stdout


def build(out: Path, download_cache: Path | None = None) -> dict[str, Any]:
    """Download the dependency wheels, build the project wheel, check tags, write the manifest; returns it."""
    name, version, requirements = read_project()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    cache = download_cache or Path(tempfile.mkdtemp(prefix="abr-download-"))
    cache.mkdir(parents=True, exist_ok=True)
    log = _pip(pip_download_cmd(requirements, cache))
    files = {Path(p).name for p in _SAVED.findall(log)} or {f.name for f in cache.glob("*.whl")}
    for f in sorted(files):
        shutil.copy2(cache / f, out / f)
    project_wheel(out)
    manifest = make_manifest(out, name, version, requirements)
    need = set(closure(requirements)) | {canonical(name)}
    lacking = missing(manifest, need)
    if lacking:
        raise SystemExit(f"the bundle lacks: {', '.join(sorted(lacking))}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    packages = [{"name": w["name"], "file": w["filename"]} for w in manifest["wheels"]]
    (out / "packages.json").write_text(json.dumps(packages, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Build the bundle; print one line per wheel and where the manifest is."""
    p = argparse.ArgumentParser(prog="build_bundle.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "dist" / "automation-bundle", help="where the wheels go")
    p.add_argument("--download-cache", type=Path, help="reuse downloaded wheels from this folder")
    args = p.parse_args(argv)
    try:
        manifest = build(args.out, args.download_cache)
    except SystemExit as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for w in manifest["wheels"]:
        print(f"{w['filename']}  {w['sha256'][:12]}")
    print(f"{len(manifest['wheels'])} wheels, manifest: {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
