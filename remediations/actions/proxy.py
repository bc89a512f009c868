"""set-guest-proxy, and the read-only guest proxy probe diagnosis uses (cause C1.proxy).

The probe runs `linux-proxy-get` / `windows-proxy-get` through Run Command: the proxy the agent and the
backup extension use, where it is set, and whether the guest can open a TCP connection to it. When the
proxy answers at a private IPv4 address, the NIC holding that address in the subscription names the proxy
VM, whose effective NSGs tell whether the proxy itself reaches Storage. The action writes the proxy with
`linux-proxy-set` / `windows-proxy-set`; the address reaches the script only as the Run Command
parameter PROXY, validated here first (and again by the script), never spliced into its text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from ..action import Action, Executed, Progress, RunSettings
from ..armid import parse_resource_id
from ..azure import Azure
from ..backupjobs import parse_time
from ..errors import ArmCallError, BadInput, arm_error
from ..model import Change, Plan
from ..netaddr import TagResolver
from ..netreads import nsgs_by_get, nsgs_effective, service_tags
from ..netrules import NsgView
from ..reads import ScriptFailed, VmView, read_vm, run_script
from ..target import Target
from .guest_agent import GuestFacts, WaitParams, guest_gate, restart_time, script_step, wait_agent
from .guest_agent import _reported_after as reported_after

__all__ = ["GuestProxy", "ProxyParams", "ProxyProbe", "ProxyVm", "SetGuestProxy", "check_proxy", "find_proxy_vm",
           "parse_proxy", "probe_proxy", "proxy_plan"]

_W = TypeVar("_W", bound="ProxyParams")
# http:// + an IPv4 address or a DNS host name + :port (1-65535); nothing else (no user, path, query, spaces).
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_PROXY = re.compile(rf"http://(?P<host>{_LABEL}(?:\.{_LABEL})*):(?P<port>[0-9]{{1,5}})", re.ASCII)
GET_SCRIPT = {"linux": "linux-proxy-get", "windows": "windows-proxy-get"}
SET_SCRIPT = {"linux": "linux-proxy-set", "windows": "windows-proxy-set"}
_PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")


def check_proxy(value: str) -> str:
    """The proxy URL when it is exactly `http://<IPv4 or host name>:<port 1-65535>`; BadInput otherwise."""
    m = _PROXY.fullmatch(value or "")
    port = int(m.group("port")) if m else 0
    host = m.group("host") if m else ""
    numeric = bool(re.fullmatch(r"[0-9.]+", host))
    if m and numeric:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            m = None
    if not m or not 1 <= port <= 65535 or len(host) > 253:
        raise BadInput(f"proxy {value!r}: want http://<IPv4 address or host name>:<port 1-65535>, nothing else")
    return value


def _split(proxy: str | None) -> tuple[str, int] | None:
    """(host, port) of a proxy URL or `host:port` as a guest reports it; None when it has no port."""
    if not proxy:
        return None
    text = proxy.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep and host and port.isdigit() else None


def ipv4(host: str) -> str | None:
    """`host` when it is an IPv4 address, else None."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


def private_ranges() -> tuple[str, ...]:
    """The private ranges that stand for VirtualNetwork when judging the way to a proxy (RFC 1918, RFC 6598)."""
    return _PRIVATE


@dataclass(frozen=True)
class GuestProxy:
    """What a `*-proxy-get` script reported: the proxy (None: none), where it is set, whether it answered."""

    proxy: str | None
    source: str | None = None
    reachable: bool | None = None
    detail: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of the proxy, None when there is none or it has no port."""
        return _split(self.proxy)

    @property
    def url(self) -> str | None:
        """The proxy as `http://host:port`, for comparing with a wanted one."""
        a = self.address
        return f"http://{a[0].lower()}:{a[1]}" if a else self.proxy

    def where(self) -> str:
        """Where the guest sets it, in words."""
        return {"waagent.conf": "/etc/waagent.conf", "environment": "the agent's environment",
                "winhttp": "WinHTTP", "localsystem": "LocalSystem's proxy settings"}.get(
            str(self.source or ""), self.source or "an unknown place")


def parse_proxy(out: dict[str, Any]) -> GuestProxy:
    """The GuestProxy of a get script's RUNBOOKS_RESULT (pure)."""
    proxy = out.get("proxy")
    reachable = out.get("reachable")
    return GuestProxy(str(proxy).strip() if proxy else None, str(out["source"]) if out.get("source") else None,
                      reachable if isinstance(reachable, bool) else None, str(out.get("detail") or ""),
                      dict(out.get("settings") or {}))


@dataclass(frozen=True)
class ProxyVm:
    """The Azure VM holding the proxy's private IP, with the NSGs its NIC's traffic crosses."""

    name: str
    target: Target | None
    nic_id: str
    ip: str
    location: str
    nsgs: tuple[NsgView, ...]


@dataclass(frozen=True)
class ProxyProbe:
    """The guest's proxy (None: the probe failed, `error`, or was not made, `skipped`), the proxy VM when it is
    one, the tags read."""

    guest: GuestProxy | None
    vm: ProxyVm | None = None
    tags: TagResolver | None = None
    error: str | None = None
    skipped: str | None = None


def find_proxy_vm(azure: Azure, ip: str) -> ProxyVm | None:
    """The VM whose NIC holds private IP `ip` in the subscription (one list of every NIC), with its NSGs."""
    for nic in azure.call(lambda: [n.as_dict() for n in azure.network.network_interfaces.list_all()]):
        props = nic.get("properties") or nic
        ips = [((c.get("properties") or c).get("private_ip_address") or (c.get("properties") or c).get(
            "privateIPAddress")) for c in (props.get("ip_configurations") or props.get("ipConfigurations") or [])]
        if ip not in ips:
            continue
        vm_id = ((props.get("virtual_machine") or props.get("virtualMachine")) or {}).get("id")
        target = None
        if vm_id:
            rid = parse_resource_id(vm_id)
            target = Target(subscription=rid.subscription, resource_group=rid.resource_group, name=rid.name)
        try:
            nsgs = nsgs_effective(azure, nic["id"])
        except ArmCallError:  # a stopped proxy VM has no effective NSGs
            nsgs = nsgs_by_get(azure, nic["id"])
        except Exception as e:
            if not type(e).__module__.startswith("azure."):
                raise
            nsgs = nsgs_by_get(azure, nic["id"])
        return ProxyVm(target.name if target else nic.get("name", ""), target, nic["id"], ip,
                       nic.get("location") or "", nsgs)
    return None


def probe_proxy(azure: Azure, vm: VmView, target: Target) -> ProxyProbe | None:
    """The guest's proxy through the get script (None when Run Command cannot run: stopped, agent silent, OS
    unknown); when it answers at an IPv4 address, the proxy VM and its NSGs (and the region's tags)."""
    os_key = (vm.os_type or "").lower()
    if os_key not in GET_SCRIPT or not vm.running or not vm.agent_ready:
        return None
    try:
        guest = parse_proxy(run_script(azure, target, GET_SCRIPT[os_key]))
    except ScriptFailed as e:
        return ProxyProbe(None, error=str(e))
    except Exception as e:  # a ReadOnly lock refuses Run Command (409 ScopeLocked, lock-resources.md)
        if not type(e).__module__.startswith("azure.") or arm_error(e).code != "ScopeLocked":
            raise
        return ProxyProbe(None, error=arm_error(e).message)
    host = ipv4(guest.address[0]) if guest.address else None
    if not guest.reachable or host is None:
        return ProxyProbe(guest)
    try:
        proxy_vm = find_proxy_vm(azure, host)
    except Exception as e:  # e.g. a role scoped to a resource group cannot list the subscription's NICs
        if not type(e).__module__.startswith("azure."):
            raise
        return ProxyProbe(guest, error=f"the proxy's VM could not be looked up ({arm_error(e).code})")
    tags = service_tags(azure, proxy_vm.location or vm.location) if proxy_vm and proxy_vm.nsgs else None
    return ProxyProbe(guest, proxy_vm, tags)


class ProxyParams(WaitParams):
    """set-guest-proxy: the proxy to set (http://host:port; None: only report), and the Ready wait."""

    proxy: str | None = Field(None, description="the working proxy, http://<IPv4 or host name>:<port>")
    restarted_after: datetime | None = Field(
        None, description="verification: the agent must report Ready after this time (the restart's)")

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_proxy(v)
        except BadInput as e:
            raise ValueError(str(e)) from None

    @classmethod
    def for_run(cls: type[_W], target: Target, settings: RunSettings, **values: Any) -> _W:
        """A run's Ready wait and the proxy the operator gave (`fix --proxy`)."""
        return cls.model_validate({"target": target, "wait_ready_seconds": settings.wait_ready_seconds,
                                   "proxy": getattr(settings, "proxy", None), **values})


def proxy_plan(action: str, vm: VmView, guest: GuestProxy, params: ProxyParams) -> Plan:
    """Set the proxy when the wanted one differs from the guest's; say why not otherwise (pure)."""
    t = params.target
    name = vm.name or t.name
    plan = Plan(action=action, target=str(t))
    now = (f"{guest.proxy} (set in {guest.where()}"
           + ("" if guest.reachable is None else ", reachable" if guest.reachable
              else f", unreachable: {guest.detail or 'no connection'}") + ")") if guest.proxy else "not set"
    if params.restarted_after is not None and not reported_after(vm, params.restarted_after):
        plan.changes.append(_change(action, vm, name, guest, params.proxy or "",
                                    f"the agent on {name} has not reported Ready since the restart at "
                                    f"{params.restarted_after.strftime('%H:%M:%SZ')}"))
        return plan
    if params.proxy is None:
        plan.reason = f"no proxy to set was given; the guest proxy of {name} is {now}"
        if not guest.proxy or guest.reachable is not False:  # nothing is broken here that a value would mend
            return plan
        plan.manual.append(f"give the working proxy: `--proxy http://host:port` (fix) or "
                           f"`--param proxy=http://host:port` (action set-guest-proxy {name})")
        plan.needs_input = True
        return plan
    if guest.url == params.proxy.lower() or guest.proxy == params.proxy:
        plan.reason = f"the guest proxy of {name} is {now}"
        return plan
    plan.changes.append(_change(action, vm, name, guest, params.proxy, f"the guest proxy is {now}"))
    return plan


def _change(action: str, vm: VmView, name: str, guest: GuestProxy, proxy: str, reason: str) -> Change:
    linux = (vm.os_type or "").lower() == "linux"
    places = ("/etc/waagent.conf (HttpProxy.Host/Port) and the agent unit's environment" if linux
              else "WinHTTP and LocalSystem's proxy settings")
    return Change(action=action, kind="change" if guest.proxy else "add", resource=f"{name}/guest-proxy",
                  resource_id=vm.id,
                  summary=f"set the guest proxy of {name} to {proxy} in {places}, then restart the agent (detached)",
                  reason=reason, before={"proxy": guest.proxy, "source": guest.source}, after={"proxy": proxy},
                  data={"script": SET_SCRIPT["linux" if linux else "windows"]})


def run_set(azure: Azure, target: Target, script_id: str, proxy: str) -> dict[str, Any]:
    """Run a set script with the proxy (checked again here) as its only Run Command parameter PROXY."""
    from .guest_agent import script_step

    return script_step(azure, target, script_id, {"PROXY": check_proxy(proxy)})


class SetGuestProxy(Action[ProxyParams, GuestFacts]):
    """Set the guest's HTTP proxy for the agent and the backup extension, then restart the agent (C1.proxy)."""

    name = "set-guest-proxy"
    summary = "set the guest's HTTP proxy for the agent and the backup extension (waagent.conf / WinHTTP)"
    Params = ProxyParams
    # Like restart-guest-agent's Run Command restart (not disruptive there either): it restarts only the agent,
    # detached, never the VM or the workload; the operator names the proxy, and it is withheld without one.
    disruptive = False
    idempotent: ClassVar[bool] = True
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: ProxyParams) -> GuestFacts:
        """The VM; then the get script when the VM runs and its agent answers."""
        vm = read_vm(azure, params.target)
        os_key = (vm.os_type or "").lower()
        if os_key not in GET_SCRIPT or guest_gate(self.name, params.target, vm, vm.os_type, "the guest proxy"):
            return GuestFacts(vm)
        return GuestFacts(vm, script_step(azure, params.target, GET_SCRIPT[os_key]))

    def plan(self, facts: GuestFacts, params: ProxyParams) -> Plan:
        """Why nothing can be read (gate), else `proxy_plan` on what the get script reported."""
        vm = facts.vm
        if params.restarted_after is not None and not reported_after(vm, params.restarted_after):
            return proxy_plan(self.name, vm, GuestProxy(None), params)
        gate = guest_gate(self.name, params.target, vm, vm.os_type or "Linux or Windows", "the guest proxy")
        if gate is not None or facts.result is None:
            return gate or Plan(action=self.name, target=str(params.target),
                                reason=f"{vm.name} runs {vm.os_type or 'an unknown OS'}; the guest proxy is read "
                                       "on Linux and Windows")
        return proxy_plan(self.name, vm, parse_proxy(facts.result), params)

    def execute(self, azure: Azure, params: ProxyParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run the set script (PROXY as its parameter), then wait until the agent reports Ready after the restart."""
        t = params.target
        out = run_set(azure, t, change.data["script"], params.proxy or "")
        done = f"guest proxy of {t.name}: {out.get('before') or '(none)'} -> {out.get('after') or params.proxy}"
        result: dict[str, Any] = {"before": out.get("before"), "after": out.get("after"),
                                  "changed": out.get("changed")}
        if not out.get("scheduled", True):
            return Executed(done + "; no agent restart was needed", result)
        due = restart_time(out)
        back, line = wait_agent(azure, t, params.wait_ready_seconds, params.poll_seconds, after=due)
        if not back:
            line += f"; the agent restart runs detached in the guest: run restart-guest-agent on {t.name} if it stays"
        return Executed(f"{done}; {line}", {**result, "restart_at": due.isoformat()})

    def verify_params(self, params: ProxyParams, result: dict[str, Any]) -> ProxyParams:
        """Done once the agent reports Ready after the restart, with the wanted proxy."""
        due = parse_time(result.get("restart_at"))
        return params if due is None else params.model_copy(update={"restarted_after": due})
