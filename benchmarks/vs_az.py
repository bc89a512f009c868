"""Diagnosis speed against the peer: one VM diagnosed by hand with the Azure CLI vs `python -m runbooks diagnose`.

Run: python benchmarks/vs_az.py [--vm vm-nsg-blocked] [--rounds 5] [--latencies 0,0.1]   (needs the sim extra)

Against `python -m armsim --scenario demo` in its own process (once with no added latency, once with 100 ms
added to every ARM request: `--latency`), it times side by side, in alternating rounds:
- by hand, as a person does it, each command a fresh `az` process, one after the other:
  `az vm get-instance-view`, `az network nic show`, `az network nsg show` on the NIC's NSG and on the subnet's
  NSG, `az vm extension list` (the names are looked up once beforehand, untimed: a person would also need
  `az network vnet subnet show` to learn the subnet's NSG; it is left out of the timed sequence, in az's favour);
- `python -m runbooks diagnose <vm> -g <rg> --arm-endpoint ... --ca-bundle ...` (a fresh process, as a person runs it),
  which reads more (effective NSGs, backup status and jobs, an in-guest proxy probe) and judges every cause.
It prints the median wall time of each side, and their ratio (the goal: at least 5 in both runs).
Not a test: wall times depend on the machine (the README's figures say which).

The Azure CLI is installed the first time into a throwaway venv, ~/.cache/azure-backup-runbooks/az-venv (said on
stderr); `--az PATH` uses another. How az talks to armsim without any network (read in azure-cli's code:
azure/cli/core/_profile.py, azure/cli/core/auth/msal_credentials.py, and MSAL's msal/managed_identity.py):
- AZURE_CONFIG_DIR is a fresh temporary folder; `az cloud register -n armsim --endpoint-resource-manager <armsim>
  --skip-endpoint-discovery ...` and `az cloud set -n armsim` make armsim the cloud's ARM endpoint.
- azureProfile.json is seeded with the account `az login --identity` writes for a system-assigned managed identity
  (user name "systemAssignedIdentity", type "servicePrincipal", assignedIdentityInfo "MSI"), so that
  Profile.get_login_credentials builds az's ManagedIdentityCredential (MSAL's ManagedIdentityClient) and no
  Entra ID authority is ever asked.
- IDENTITY_ENDPOINT and IDENTITY_HEADER make MSAL take the App Service (also Azure Automation) managed-identity
  source: it GETs the token from IDENTITY_ENDPOINT (api-version 2019-08-01, header X-IDENTITY-HEADER). A token
  server on 127.0.0.1 in this process answers with a dummy bearer token (armsim checks none; it adds no latency).
- REQUESTS_CA_BUNDLE is armsim's CA; telemetry and survey prompts are off (AZURE_CORE_COLLECT_TELEMETRY=no,
  AZURE_CORE_SURVEY_MESSAGE=no).
Every command is run once untimed first (az builds its command index; Python writes its bytecode caches: where
PYTHONDONTWRITEBYTECODE is set, ours go to ~/.cache/azure-backup-runbooks/pycache, see python_env).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"  # armsim's demo subscription (armsim.DEMO_SUBSCRIPTION)
TENANT = "11111111-1111-1111-1111-111111111111"  # any GUID: armsim checks no token
GROUP = "rg-demo"
AZ_VENV = Path.home() / ".cache" / "azure-backup-runbooks" / "az-venv"
ROOT = Path(__file__).resolve().parent.parent
PYCACHE = Path.home() / ".cache" / "azure-backup-runbooks" / "pycache"


def say(text: str) -> None:
    """A progress line on stderr (stdout is the result)."""
    print(f"vs_az: {text}", file=sys.stderr, flush=True)


def ensure_az(given: str | None) -> str:
    """The az executable: --az, else the throwaway venv's, installed there the first time (said on stderr)."""
    if given:
        return given
    az = AZ_VENV / "bin" / "az"
    if not az.exists():
        say(f"installing azure-cli into a throwaway venv, {AZ_VENV} (first run only; a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(AZ_VENV)], check=True)
        subprocess.run([str(AZ_VENV / "bin" / "pip"), "install", "--quiet", "azure-cli"], check=True)
    return str(az)


class _Token(http.server.BaseHTTPRequestHandler):
    """The App Service managed-identity endpoint MSAL asks (a dummy token that expires in an hour)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.headers.get("X-IDENTITY-HEADER") != "armsim":
            self.send_error(401)
            return
        body = json.dumps({"access_token": "armsim-benchmark", "expires_on": str(int(time.time()) + 3600),
                           "resource": "armsim", "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@contextmanager
def token_server() -> Iterator[str]:
    """A managed-identity token endpoint on 127.0.0.1; yields its URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Token)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/msi/token"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def armsim(latency: float) -> Iterator[dict[str, str]]:
    """`python -m armsim --scenario demo --latency L` in its own process; yields its endpoint and CA bundle."""
    proc = subprocess.Popen([sys.executable, "-m", "armsim", "--port", "0", "--scenario", "demo",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("vs_az: armsim did not start (is the sim extra installed? pip install -e '.[sim]')")
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def az_env(az: str, sim: dict[str, str], token_url: str, config_dir: str) -> dict[str, str]:
    """The environment in which az talks to armsim only (see the module docstring), its cloud registered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update(AZURE_CONFIG_DIR=config_dir, REQUESTS_CA_BUNDLE=sim["ca_bundle"], IDENTITY_ENDPOINT=token_url,
               IDENTITY_HEADER="armsim", AZURE_CORE_COLLECT_TELEMETRY="no", AZURE_CORE_SURVEY_MESSAGE="no")
    endpoint = sim["endpoint"]
    for args in (["cloud", "register", "-n", "armsim", "--endpoint-resource-manager", endpoint,
                  "--endpoint-active-directory", "https://login.armsim.invalid",
                  "--endpoint-active-directory-resource-id", f"{endpoint}/", "--skip-endpoint-discovery"],
                 ["cloud", "set", "-n", "armsim"]):
        subprocess.run([az, *args], env=env, check=True, capture_output=True)
    profile = {"subscriptions": [{
        "id": SUBSCRIPTION, "name": "armsim", "state": "Enabled", "isDefault": True, "tenantId": TENANT,
        "homeTenantId": TENANT, "environmentName": "armsim", "managedByTenants": [],
        "user": {"name": "systemAssignedIdentity", "type": "servicePrincipal", "assignedIdentityInfo": "MSI"}}]}
    Path(config_dir, "azureProfile.json").write_text(json.dumps(profile), encoding="utf-8")
    return env


def az_json(az: str, env: dict[str, str], *args: str) -> Any:
    """One az command's JSON output (a failure stops the benchmark with az's own message)."""
    done = subprocess.run([az, *args, "-o", "json"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vs_az: az {' '.join(args)} failed: {done.stderr.strip()[:500]}")
    return json.loads(done.stdout or "null")


def by_hand(az: str, env: dict[str, str], vm: str) -> list[list[str]]:
    """The commands a person runs, with the names looked up (untimed) as a person would learn them."""
    view = az_json(az, env, "vm", "show", "-g", GROUP, "-n", vm)
    nic_id = view["networkProfile"]["networkInterfaces"][0]["id"]
    nic = az_json(az, env, "network", "nic", "show", "--ids", nic_id)
    nsgs = [(nic.get("networkSecurityGroup") or {}).get("id")]
    for ipc in nic.get("ipConfigurations") or []:
        subnet = az_json(az, env, "network", "vnet", "subnet", "show", "--ids", ipc["subnet"]["id"])
        nsgs.append((subnet.get("networkSecurityGroup") or {}).get("id"))
    cmds = [["vm", "get-instance-view", "-g", GROUP, "-n", vm],
            ["network", "nic", "show", "-g", GROUP, "-n", nic_id.rsplit("/", 1)[-1]]]
    cmds += [["network", "nsg", "show", "-g", GROUP, "-n", n.rsplit("/", 1)[-1]] for n in nsgs if n]
    cmds.append(["vm", "extension", "list", "-g", GROUP, "--vm-name", vm])
    return [[az, *c, "-o", "json"] for c in cmds]


def ours(sim: dict[str, str], vm: str) -> list[str]:
    """`python -m runbooks diagnose` against armsim."""
    return [sys.executable, "-m", "runbooks", "diagnose", vm, "-g", GROUP, "--subscription", SUBSCRIPTION,
            "--arm-endpoint", sim["endpoint"], "--ca-bundle", sim["ca_bundle"]]


def python_env() -> dict[str, str]:
    """Our side's environment: no RUNBOOKS_* settings, and Python's bytecode cached as on a user's machine.

    Python caches compiled modules by default (pip compiled az's and the SDKs' at install). Where the
    environment says PYTHONDONTWRITEBYTECODE (some CI images and sandboxes do), this checkout's own modules would
    be compiled from source on every run: the cache goes to PYCACHE instead, so the checkout stays untouched.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOKS_")}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return env


def timed(cmds: list[list[str]], env: dict[str, str]) -> float:
    """Wall seconds of the commands run one after the other (each must succeed)."""
    t0 = time.perf_counter()
    for cmd in cmds:
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"vs_az: {' '.join(cmd[:6])} … exited {done.returncode}: {done.stderr.strip()[:500]}")
    return time.perf_counter() - t0


def our_requests(cmd: list[str], env: dict[str, str]) -> int:
    """ARM requests one diagnosis sends (one untimed run with --verbose: a line per request)."""
    done = subprocess.run([*cmd, "--verbose"], env=env, capture_output=True, text=True, cwd=ROOT)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("ARM "))


def run(az: str, latency: float, vm: str, rounds: int, token_url: str) -> dict[str, Any]:
    """One armsim at `latency`: both sides warmed up once, then `rounds` alternating timed rounds."""
    with armsim(latency) as sim, tempfile.TemporaryDirectory(prefix="vs-az-") as config_dir:
        env = az_env(az, sim, token_url, config_dir)
        hand = by_hand(az, env, vm)
        mine = ours(sim, vm)
        our_env = python_env()
        timed(hand, env)  # warm-up: az's command index, both sides' bytecode caches
        timed([mine], our_env)
        az_times, our_times = [], []
        for _ in range(rounds):
            az_times.append(timed(hand, env))
            our_times.append(timed([mine], our_env))
        return {"latency_ms": round(latency * 1000), "az_s": statistics.median(az_times),
                "runbooks_s": statistics.median(our_times), "az_all": az_times, "runbooks_all": our_times,
                "az_commands": len(hand), "runbooks_requests": our_requests(mine, our_env)}


def main(argv: list[str] | None = None) -> int:
    """Both runs, then the table."""
    p = argparse.ArgumentParser(prog="python benchmarks/vs_az.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--vm", default="vm-nsg-blocked", help="a demo VM (rg-demo) with a NIC NSG and a subnet NSG")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per latency (the median is shown)")
    p.add_argument("--latencies", default="0,0.1", help="seconds armsim adds to every request, comma-separated")
    p.add_argument("--az", help="an az executable to use instead of the throwaway venv's")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args(argv)
    az = ensure_az(a.az)
    if not shutil.which(az) and not Path(az).exists():
        raise SystemExit(f"vs_az: no az at {az}")
    version = subprocess.run([az, "version", "-o", "tsv", "--query", '"azure-cli"'], capture_output=True,
                             text=True).stdout.strip() or "?"
    results = []
    with token_server() as token_url:
        for latency in (float(x) for x in a.latencies.split(",")):
            say(f"armsim latency {latency * 1000:.0f} ms: warming up, then {a.rounds} rounds")
            results.append(run(az, latency, a.vm, a.rounds, token_url))
    if a.json:
        print(json.dumps({"azure_cli": version, "vm": a.vm, "cpus": os.cpu_count(), "runs": results}, indent=2))
        return 0
    print(f"Diagnosis of {a.vm} on armsim (demo), median of {a.rounds} rounds, {os.cpu_count()} CPUs, "
          f"azure-cli {version}")
    print(f"{'added latency':>14}  {'az by hand':>22}  {'runbooks diagnose':>24}  {'ratio':>6}")
    for r in results:
        print(f"{r['latency_ms']:>11} ms  {r['az_s']:>7.2f} s ({r['az_commands']} commands)  "
              f"{r['runbooks_s']:>7.2f} s ({r['runbooks_requests']} requests)  {r['az_s'] / r['runbooks_s']:>5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
