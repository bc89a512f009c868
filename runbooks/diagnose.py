"""Cause checks: each reads the Facts snapshot (never Azure) and returns a Finding with its evidence.

A check that cannot decide from ARM facts alone says `unknown`; where an action's read-only
preview can decide it in the guest (Run Command with a read-only script), the Finding names that
action as its `probe`, and the engine asks it.
"""

from __future__ import annotations

from dataclasses import replace

from remediations.actions.proxy import ipv4, private_ranges
from remediations.facts import Facts
from remediations.netaddr import TagResolver
from remediations.netrules import egress_verdicts, evaluate, storage_tag
from remediations.reads import STOPPED_INTERNALLY, shut_down_inside
from remediations.routes import RouteFacts
from remediations.verdicts import BACKUP_PORTS, MIN_LINUX_AGENT, version_tuple, why_remove

from .catalog import ErrorEntry
from .checks import CHECKS as _MORE
from .finding import Check, Finding, Verdict, guest_probe, not_observable

__all__ = ["Finding", "check", "diagnose"]

_PORTS = ", ".join(map(str, BACKUP_PORTS))  # the ports allow-backup-egress opens by default: the same verdict


def _c1(f: Facts) -> Finding:
    if f.proxy is not None and f.proxy.guest is not None and f.proxy.guest.proxy:
        return _c1_to_proxy(f)
    if f.nsgs is None:
        return Finding("C1", "unknown", f"{f.vm.name} has no network interface to evaluate")
    names = ", ".join(f"{n.name} ({n.scope})" for n in f.nsgs) or "none"
    if not f.nsgs:
        return Finding("C1", "absent", f"no NSG on {f.vm.name}'s NIC or subnet; outbound is open")
    # Without tags, every rule that matters treats all public addresses alike (see facts._needs_tags):
    # any public prefix stands for Storage.<region> (TEST-NET-2 here, never contacted).
    # The tag's name is the Service Tags API's (`Storage.EastUS`); unread, the evidence says just "Storage".
    resolver = f.tags or TagResolver({"Storage": ["198.51.100.0/24"]}, regions={"Storage": f.vm.location})
    tag = storage_tag(resolver, f.vm.location)
    blocked = egress_verdicts(f.nsgs, region=f.vm.location, ports=BACKUP_PORTS, resolver=resolver)
    if not blocked:
        return Finding("C1", "absent", f"outbound TCP {_PORTS} to {tag} is allowed by {names}")
    b = blocked[0]
    return Finding("C1", "present", f"outbound TCP {b.port} to {tag} denied by {b.nsg_name} "
                                    f"({b.scope}) rule {b.rule.name} (priority {b.rule.priority})")


def _c1_to_proxy(f: Facts) -> Finding:
    """With a guest proxy, backup traffic leaves through it: judge the VM's NSGs on the way to the proxy only."""
    guest = f.proxy.guest if f.proxy else None
    assert guest is not None
    via = f"{f.vm.name}'s backup traffic goes through the guest proxy {guest.proxy} (set in {guest.where()})"
    address = guest.address
    ip = ipv4(address[0]) if address else None
    if address is None or ip is None:  # a host name: ARM cannot resolve it; the guest's connect test says
        verdict: Verdict = "absent" if guest.reachable else "unknown"
        return Finding("C1", verdict, f"{via}; the way to a proxy named by host name is judged by the guest's "
                                      f"connect test (C1.proxy)")
    resolver = (f.tags or TagResolver({})).with_virtual_network(private_ranges())
    for nsg in f.nsgs or ():
        v = evaluate(nsg.rules, dest_ip=ip, dest_port=address[1], resolver=resolver)
        if not v.allowed and v.rule is not None:
            r = v.rule
            return Finding("C1", "present", f"{via}; outbound TCP {address[1]} to {ip} denied by {nsg.name} "
                                            f"({nsg.scope}) rule {r.name} (priority {r.priority})", fixes=(),
                           manual=(f"allow outbound TCP {address[1]} to the proxy {ip} in NSG {nsg.name} "
                                   f"({nsg.scope}) ahead of rule {r.name} (priority {r.priority})",))
    names = ", ".join(f"{n.name} ({n.scope})" for n in f.nsgs or ()) or "no NSG"
    return Finding("C1", "absent", f"{via}; outbound TCP {address[1]} to {ip} is allowed by {names} (the direct "
                                   "way to Storage is not used; C1.proxy judges the proxy's)")


def _c1_proxy(f: Facts) -> Finding:
    """Present when the guest's proxy does not answer, or is an Azure VM whose NSGs deny Storage egress."""
    vm, probe = f.vm, f.proxy
    if probe is None:
        why = (f"{vm.name} is {vm.power_state or 'in an unknown state'}" if not vm.running
               else f"agent {vm.agent_status or 'absent'}" if not vm.agent_ready else f"{vm.os_type or 'unknown OS'}")
        return Finding("C1.proxy", "unknown", f"cannot look inside the guest for a proxy: {why}")
    if probe.guest is None:
        return Finding("C1.proxy", "unknown", f"the guest proxy was not read: {probe.skipped}" if probe.skipped
                       else f"the guest proxy probe failed: {probe.error}")
    g = probe.guest
    if not g.proxy:
        return Finding("C1.proxy", "absent", f"no HTTP proxy in the guest of {vm.name}; C1 judges the direct way")
    where = f"the guest proxy {g.proxy} (set in {g.where()})"
    if g.reachable is False:
        return Finding("C1.proxy", "present", f"{where} does not answer from {vm.name}: "
                                              f"{g.detail or 'connect failed'}")
    if g.reachable is None:
        return Finding("C1.proxy", "unknown", f"{where}: the guest could not test it ({g.detail or 'no detail'})")
    p = probe.vm
    if p is None:
        why = probe.error or "it is not an Azure VM in this subscription"
        return Finding("C1.proxy", "unknown", f"{where} answers from {vm.name}; {why}, so its own way to Storage "
                                              "is not visible")
    resolver = probe.tags or f.tags or TagResolver({"Storage": ["198.51.100.0/24"]},
                                                   regions={"Storage": p.location or vm.location})
    tag = storage_tag(resolver, p.location or vm.location)
    blocked = egress_verdicts(p.nsgs, region=p.location or vm.location, ports=BACKUP_PORTS, resolver=resolver)
    if not blocked:
        names = ", ".join(f"{n.name} ({n.scope})" for n in p.nsgs) or "no NSG"
        return Finding("C1.proxy", "absent", f"{where} answers; it is VM {p.name} ({p.ip}), whose outbound TCP "
                                             f"{_PORTS} to {tag} is allowed by {names}")
    b = blocked[0]
    return Finding("C1.proxy", "present", f"{where} answers, but it is VM {p.name} ({p.ip}), whose outbound TCP "
                                          f"{b.port} to {tag} is denied by {b.nsg_name} ({b.scope}) rule "
                                          f"{b.rule.name} (priority {b.rule.priority})",
                   fixes=("allow-backup-egress",) if p.target else (), on=p.target,
                   manual=(f"on the proxy VM {p.name}, allow outbound TCP {b.port} to {tag} in NSG {b.nsg_name} "
                           f"({b.scope}) ahead of rule {b.rule.name} (priority {b.rule.priority})",))


def _c1_route(f: Facts) -> Finding:
    """The effective route that carries Storage traffic (read by the engine only when needed; remediations.routes)."""
    guest = getattr(f.proxy, "guest", None)
    if guest is not None and getattr(guest, "proxy", None):
        return Finding("C1.route", "absent", f"{f.vm.name}'s backup traffic goes through the guest proxy {guest.proxy}; "
                                             "its own route to Storage is not used (C1.proxy judges the proxy's)")
    verdict, evidence, manual = (f.routes or RouteFacts(skipped="not needed")).judge()
    return Finding("C1.route", verdict, evidence, manual=manual)


def _c2(f: Facts) -> Finding:
    vm = f.vm
    if vm.os_type != "Windows":
        return Finding("C2", "absent", f"{vm.name} runs {vm.os_type or 'a non-Windows OS'}")
    if not vm.running:
        return Finding("C2", "absent", f"{vm.name} is {vm.power_state}; the agent is not expected to answer")
    if vm.agent_ready:
        return Finding("C2", "absent", f"guest agent Ready (version {vm.agent_version})")
    return Finding("C2", "present", f"{vm.name} is running but its guest agent is "
                                    f"{vm.agent_status or 'status missing'}: {vm.agent_message or 'no status'}")


def _c3(f: Facts) -> Finding:
    vm = f.vm
    if vm.os_type != "Linux":
        return Finding("C3", "absent", f"{vm.name} runs {vm.os_type or 'a non-Linux OS'}")
    if not vm.running:
        return Finding("C3", "absent", f"{vm.name} is {vm.power_state}")
    if not vm.agent_ready:
        return Finding("C3", "present", f"Linux agent {vm.agent_status or 'status missing'}: {vm.agent_message or ''}")
    if vm.agent_version and version_tuple(vm.agent_version) < version_tuple(MIN_LINUX_AGENT):
        return Finding("C3", "present", f"Linux agent {vm.agent_version} is below the supported minimum "
                                        f"{MIN_LINUX_AGENT}")
    return Finding("C3", "absent", f"Linux agent Ready, version {vm.agent_version}")


def _c4_shutdown(f: Facts) -> Finding:
    """Present when the VM is PowerState/stopped and Resource Health annotates it VirtualMachineStoppedInternally."""
    # Sources: azure-docs states-billing.md (stopped: PowerOff API or shutdown from within the guest OS);
    # azure-monitor-docs resource-health-vm-annotation.md. A silent agent on a running VM is not this.
    vm, health = f.vm, f.health or {}
    power = vm.power_state or "unknown"
    if power != "stopped":
        why = (f"{vm.name} is {power}, not stopped from inside" if not vm.running
               else f"{vm.name} is running, guest agent Ready" if vm.agent_ready
               else f"{vm.name} is running (guest agent {vm.agent_status or 'status missing'}): a silent agent "
                    "on a running VM is not a shutdown")
        return Finding("C4.shutdown", "absent", why)
    if health.get("error"):
        return Finding("C4.shutdown", "unknown", f"{vm.name} is PowerState/stopped; Resource Health could not be "
                                                 f"read ({health['error']}) to tell a shutdown inside the guest "
                                                 "from a stop through the platform")
    summary = str(health.get("summary") or "no summary")
    if shut_down_inside(health):
        return Finding("C4.shutdown", "present", f"{vm.name} was shut down from inside its guest: PowerState/stopped "
                                                 f"(allocated, still billed), Resource Health annotation "
                                                 f"{STOPPED_INTERNALLY}: {summary}")
    return Finding("C4.shutdown", "absent", f"{vm.name} is PowerState/stopped through the platform, not from inside "
                                            f"the guest (Resource Health: {summary})")


def _c5_extension(f: Facts) -> Finding:
    ext = f.vm.backup_extension()
    if ext is None:
        return Finding("C5.extension", "absent", "backup extension not installed; the next backup installs it")
    bad = why_remove(ext) is not None  # the very rule remove-backup-extension plans by
    state = f"{ext.name} ({ext.type} {ext.version}) provisioning {ext.state}, handler {ext.handler_status or 'n/a'}"
    return Finding("C5.extension", "present" if bad else "absent", state)


_CHECKS: dict[str, Check] = {
    "C1": _c1, "C1.route": _c1_route, "C1.proxy": _c1_proxy, "C2": _c2, "C3": _c3, "C4.shutdown": _c4_shutdown,
    "C4.sql": guest_probe("C4.sql", "set-vss-copy-backup", "SQL Server / USEVSSCOPYBACKUP"),
    "C4.load": not_observable("C4.load", "CPU/memory load is not visible through ARM (needs guest metrics)"),
    "C4.schedule": not_observable("C4.schedule", "schedule collisions are judged from the vault's policies "
                                                  "(not checked)"),
    "C4.dhcp": not_observable("C4.dhcp", "DHCP inside the guest is not visible through ARM"),
    "C5.extension": _c5_extension,
    "C5.provider": guest_probe("C5.provider", "enable-iaasvmprovider", "iaasvmprovider start type"),
    **_MORE,  # the causes of the newer error codes (runbooks/checks/, issue #14)
}


def check(cause: str, facts: Facts) -> Finding:
    """One cause's verdict from the facts."""
    return _CHECKS[cause](facts)


def diagnose(facts: Facts, entry: ErrorEntry) -> list[Finding]:
    """Every cause of the runbook, in its order, judged from the facts."""
    return [check(c, facts) for c in entry.causes]


def decided(finding: Finding, present: bool, evidence: str) -> Finding:
    """A probed finding, resolved by the probe's answer."""
    return replace(finding, verdict="present" if present else "absent", evidence=evidence, probe=finding.probe)
