"""The guest's HTTP proxy: its settings, the proxy Run Command scripts, and whether the proxy path reaches Storage.

Where the guest keeps its proxy (see remediations/scripts/*-proxy-*.{sh,ps1} for the sources):
- Linux: HttpProxy.Host/HttpProxy.Port in /etc/waagent.conf, which the agent prefers to the https_proxy /
  HTTPS_PROXY of its environment (Azure/WALinuxAgent restutil.py `_get_http_proxy`; no proxy without a port);
  the environment comes from the agent unit, a drop-in's Environment= taking effect at the next daemon-reload and
  restart.
- Windows: WinHTTP's machine-wide proxy, then the LocalSystem account's ProxyEnable/ProxyServer (the order is
  assumed).

A proxy is reachable when its host is the private IP of a running simulated VM whose guest listens on that
port (`Guest.proxy_port`), the client's NSGs allow the flow out and the proxy's NSGs allow it in (armsim's own
evaluator, netpolicy.first_match). A denied or unanswered connection times out; a VM that runs but does not
listen refuses. A VM with a proxy reaches Storage iff the proxy is reachable and the proxy VM's own path
(`direct`, its NSGs and routes) reaches Storage; the VM's own path does not matter then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .netpolicy import first_match

if TYPE_CHECKING:
    from .compute import VM
    from .guest import Guest
    from .sim import Simulator

__all__ = ["BYPASS", "PROXY_JOB_NEEDS", "PROXY_MUTATES", "PROXY_NEEDS", "ProxySettings", "Reach", "effective",
           "probe", "run_proxy_script", "storage_path_blocked", "valid_proxy"]

BYPASS = "<local>;168.63.129.16;169.254.169.254"
PROXY_MUTATES = {"linux-proxy-get": False, "linux-proxy-set": True, "windows-proxy-get": False,
                 "windows-proxy-set": True}
_LINUX_SET_DETACH = ("AGENT_JOB='", "systemd-run", "--on-active", "setsid", "nohup")
PROXY_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-proxy-get": ("HttpProxy\\.Host", "HttpProxy\\.Port", "systemctl show -p Environment", "https_proxy",
                        "HTTPS_PROXY", "timeout 5 bash -c", "/dev/tcp/"),
    "linux-proxy-set": (*_LINUX_SET_DETACH, "valid_proxy \"${PROXY-}\"", "HttpProxy.Host", "HttpProxy.Port",
                        "http-proxy.conf", "Environment=", "https_proxy=", "walinuxagent", "waagent"),
    "windows-proxy-get": ("WinHttpSettings", "S-1-5-18", "ProxyEnable", "ProxyServer", "TcpClient", "Wait(5000)"),
    "windows-proxy-set": ("param([string]$Proxy)", "-cmatch $pattern", "\\z", "netsh.exe winhttp set proxy",
                          "S-1-5-18", "ProxyEnable", "ProxyServer", "168.63.129.16", "$job = '",
                          "Register-ScheduledTask", "New-ScheduledTaskTrigger -Once"),
}
PROXY_JOB_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-proxy-set": ("systemctl daemon-reload", "systemctl restart"),
    "windows-proxy-set": ("Restart-Service", "RdAgent", "WindowsAzureGuestAgent"),
}

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PROXY = re.compile(rf"http://(?P<host>{_IPV4}|{_LABEL}(?:\.{_LABEL})*):(?P<port>[1-9][0-9]{{0,4}})")


def valid_proxy(value: object) -> tuple[str, int] | None:
    """(host, port) when `value` is exactly http://<IPv4 or hostname>:<1-65535>, as the set scripts check; else None."""
    m = _PROXY.fullmatch(value) if isinstance(value, str) else None
    if m is None or int(m["port"]) > 65535 or len(m["host"]) > 253:
        return None
    host = m["host"]
    if not re.fullmatch(_IPV4, host) and re.search(r"(?:^|\.)[0-9]+$", host):
        return None  # all-digit labels make an IPv4 or nothing
    return host, int(m["port"])


@dataclass
class ProxySettings:
    """Every place a guest keeps its proxy (raw values as the get scripts report them)."""

    conf_host: str | None = None  # waagent.conf HttpProxy.Host (Linux)
    conf_port: str | None = None  # waagent.conf HttpProxy.Port
    unit_env: dict[str, str] = field(default_factory=dict)  # the agent unit's Environment (applied at its start)
    dropin_env: dict[str, str] = field(default_factory=dict)  # the http-proxy.conf drop-in as written
    etc_environment: dict[str, str] = field(default_factory=dict)  # /etc/environment (not the agent's)
    winhttp: str | None = None  # WinHTTP proxy string (Windows)
    winhttp_bypass: str | None = None
    ls_enable: int | None = None  # LocalSystem ProxyEnable / ProxyServer / ProxyOverride
    ls_server: str | None = None
    ls_override: str | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for /_armsim/state."""
        return {k: v for k, v in vars(self).items() if v not in (None, {})}


def _host_port(server: str) -> tuple[str, str | None]:
    """Host and port of a proxy string ("h:p", "http://h:p/", "http=h:p;https=h2:p2": https wins)."""
    entries = [e.strip() for e in server.split(";") if e.strip()]
    entry = next((e for e in entries if e.startswith("https=")), entries[0] if entries else "")
    entry = re.sub(r"^[A-Za-z]+=", "", entry)
    entry = re.sub(r"^[A-Za-z]+://", "", entry).split("/")[0].rsplit("@", 1)[-1]
    host, sep, port = entry.rpartition(":")
    return (host, port) if sep else (entry, None)


def effective(g: Guest) -> tuple[str | None, str | None, str | None, str | None]:
    """(source, host, port, detail) of the proxy the agent and the backup extension use; host None: no proxy."""
    s = g.proxy
    if g.os_type == "Linux":
        if s.conf_host:
            if not s.conf_port:
                return "waagent.conf", None, None, "HttpProxy.Host without HttpProxy.Port: the agent connects directly"
            return "waagent.conf", s.conf_host, s.conf_port, None
        url = s.unit_env.get("https_proxy") or s.unit_env.get("HTTPS_PROXY")
        if not url:
            return None, None, None, None
        host, port = _host_port(url)
        return ("environment", host, port, None) if port else ("environment", None, None,
                                                               f"{url} has no port: the agent connects directly")
    server, source = (s.winhttp, "winhttp") if s.winhttp else (
        (s.ls_server, "localsystem") if s.ls_enable == 1 and s.ls_server else (None, None))
    if not server:
        return None, None, None, None
    host, port = _host_port(server)
    return source, host, port or "80", None


@dataclass
class Reach:
    """Whether a TCP connection to the proxy succeeds: the guest's detail line, armsim's reason, the proxy VM."""

    ok: bool
    detail: str
    why: str
    vm: VM | None = None


def _ips(sim: Simulator, vm: VM) -> list[str]:
    nics = [sim.network.nics.get(n.lower()) for n in vm.nic_ids]
    return [ip for nic in nics if nic is not None for _, ip in nic.ip_configs()]


def _nsg_denies(sim: Simulator, vm: VM, direction: str, src: str, dst: str, port: int) -> str | None:
    """The NSG rule of `vm` that denies this TCP flow, as text, or None."""
    for nsg, scope, _nic in sim.network.nsgs_for(vm):
        rule = first_match(nsg.rules.values(), direction=direction, protocol="Tcp", src_ip=src, dst_ip=dst,
                           dst_port=port, tags=sim.network.tags)
        if rule["properties"]["access"] == "Deny":
            return f"{scope} NSG {nsg.name} rule {rule['name']} denies {direction.lower()} TCP {port} to {dst}"
    return None


def probe(sim: Simulator, vm: VM, host: str, port: int) -> Reach:
    """A TCP connect from `vm`'s guest to host:port, as armsim's network sees it."""
    where = f"connect to {host}:{port}"
    timeout = f"{where}: timed out after 5 s"
    if not re.fullmatch(_IPV4, host):
        return Reach(False, f"{where}: Name or service not known", f"{host} does not resolve in armsim")
    target = next((v for v in sim.compute.vms.values() if v is not vm and host in _ips(sim, v)), None)
    if target is None:
        return Reach(False, timeout, f"no simulated VM has the IP {host}")
    src = (_ips(sim, vm) or ["10.255.255.254"])[0]
    denied = _nsg_denies(sim, vm, "Outbound", src, host, port) or _nsg_denies(sim, target, "Inbound", src, host, port)
    if denied:
        return Reach(False, timeout, denied, target)
    if target.power != "running" or target.guest.shut_down_inside:
        return Reach(False, timeout, f"{target.name} is not running", target)
    if target.guest.proxy_port != port:
        return Reach(False, f"{where}: refused", f"nothing listens on {target.name} port {port}", target)
    return Reach(True, f"{where}: ok", "", target)


def storage_path_blocked(sim: Simulator, vm: VM, direct: Callable[[VM], str | None]) -> str | None:
    """Why `vm` cannot reach Storage, or None: through its guest proxy when it has one, else its own path."""
    source, host, port, _ = effective(vm.guest)
    if host is None or port is None or not port.isdigit():
        return direct(vm)
    reach = probe(sim, vm, host, int(port))
    if not reach.ok or reach.vm is None:
        return f"guest proxy {host}:{port} ({source}) is unreachable: {reach.why}"
    blocked = direct(reach.vm)
    return f"proxy VM {reach.vm.name} cannot reach Storage: {blocked}" if blocked else None


Prober = Callable[[str, int], Reach]
Outcome = tuple[int, dict[str, Any], str, Callable[[], None] | None]


def _param(params: Mapping[str, str], name: str, *, case: bool) -> str | None:
    """A Run Command parameter: Linux environment names are case-sensitive, PowerShell parameters are not."""
    if case:
        return params.get(name)
    return next((v for k, v in params.items() if k.lower() == name.lower()), None)


def _get(g: Guest, sid: str, prober: Prober | None) -> Outcome:
    s = g.proxy
    source, host, port, detail = effective(g)
    reachable: bool | None = None
    proxy = f"http://{host}:{port}" if host and port else None
    if host and port and port.isdigit() and prober is not None:
        reach = prober(host, int(port))
        reachable, detail = reach.ok, reach.detail
    if g.os_type == "Linux":
        env = {k: s.unit_env.get(k) for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")}
        settings: dict[str, Any] = {
            "waagent.conf": {"HttpProxy.Host": s.conf_host, "HttpProxy.Port": s.conf_port}, "unit": g.agent_service,
            "unit_environment": env,
            "/etc/environment": {k: s.etc_environment.get(k) for k in ("http_proxy", "https_proxy")}}
    else:
        settings = {"winhttp": {"proxy": s.winhttp, "bypass": s.winhttp_bypass},
                    "localsystem": {"ProxyEnable": s.ls_enable, "ProxyServer": s.ls_server,
                                    "ProxyOverride": s.ls_override}}
    return 0, {"proxy": proxy, "source": source, "settings": settings, "reachable": reachable, "detail": detail}, "", None


def _set(g: Guest, sid: str, at: str, params: Mapping[str, str], restart: Callable[[], None]) -> Outcome:
    linux = g.os_type == "Linux"
    parsed = valid_proxy(_param(params, "PROXY" if linux else "Proxy", case=linux))
    if parsed is None:
        return 2, {"error": "bad-proxy", "changed": False, "scheduled": False}, \
            "PROXY must be exactly http://<IPv4 or hostname>:<port>; nothing was changed\n", None
    host, port = parsed
    after, s = f"http://{host}:{port}", g.proxy
    if linux:
        before = f"http://{s.conf_host}" + (f":{s.conf_port}" if s.conf_port else "") if s.conf_host else None
        want = {"http_proxy": after, "https_proxy": after}
        changed = (s.conf_host, s.conf_port, s.dropin_env) != (host, str(port), want)
        s.conf_host, s.conf_port, s.dropin_env = host, str(port), want
    else:
        before = "http://" + re.sub(r"^[A-Za-z]+://", "", s.winhttp) if s.winhttp else None
        hostport = f"{host}:{port}"
        changed = s.winhttp != hostport or s.ls_enable != 1 or s.ls_server != hostport
        if s.winhttp != hostport:
            s.winhttp, s.winhttp_bypass = hostport, BYPASS
        if s.ls_enable != 1 or s.ls_server != hostport:
            s.ls_enable, s.ls_server, s.ls_override = 1, hostport, BYPASS
    result: dict[str, Any] = {"changed": changed, "before": before, "after": after}
    if linux:
        result["unit"] = g.agent_service
    if not changed:
        return 0, {**result, "scheduled": False, "restart_at": None}, "", None

    def apply() -> None:  # the agent's restart: systemd has reloaded the drop-in by then
        if linux:
            s.unit_env = {**{k: v for k, v in s.unit_env.items() if k not in s.dropin_env}, **s.dropin_env}
        restart()

    how = {"how": "systemd-run"} if linux else {"how": "scheduled-task", "task": "runbooks-agent-restart"}
    return 0, {**result, "scheduled": True, **how, "delay": 10, "restart_at": at}, \
        "Running timer as unit: run-u42.timer\n" if linux else "", apply


def run_proxy_script(g: Guest, sid: str, at: str, params: Mapping[str, str], prober: Prober | None,
                     restart: Callable[[], None]) -> Outcome:
    """Apply a proxy script to the guest: (exit code, result JSON without "script", stderr, detached restart)."""
    if sid.endswith("-get"):
        return _get(g, sid, prober)
    return _set(g, sid, at, params, restart)
