"""Reading what triggers a runbook: an Azure Monitor alert (common alert schema), a webhook wrapper, a VM
or vault resource ID, or a JSON list of VM IDs. Parsing only: no I/O, no Azure calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from remediations.errors import BadInput
from remediations.target import Target, parse_target

__all__ = ["Alert", "Trigger", "is_vault_id", "read_trigger", "resource_parts"]

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_VM_IN = re.compile(r"/subscriptions/[^/\s\"]+/resourceGroups/[^/\s\"]+/providers/Microsoft\.Compute/"
                    r"virtualMachines/[A-Za-z0-9_.-]+", re.I)
_RESOURCE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<type>[^/]+/[^/]+)"
                       r"/(?P<name>[^/]+)/?$", re.I)


@dataclass(frozen=True)
class Alert:
    """The parts of a common-alert-schema alert a fix needs."""

    rule: str
    condition: str
    service: str
    vault_id: str | None
    job_id: str | None
    category: str | None


@dataclass(frozen=True)
class Trigger:
    """What a payload asks for: VMs to fix, or nothing (`ignored` says why)."""

    source: str
    targets: tuple[Target, ...] = ()
    ignored: str | None = None
    alert: Alert | None = None


def _json(text: str) -> Any:
    """JSON from `text`, also when it is embedded in a wrapper (e.g. a PowerShell-style WebhookData string)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    dec = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r'\{\s*"schemaId"', text)] + [i for i, c in enumerate(text) if c in "{["]
    for start in starts[:50]:
        try:
            return dec.raw_decode(text[start:])[0]
        except ValueError:
            continue
    raise BadInput("the data is not JSON, a VM resource ID or a webhook payload; expected an Azure Monitor alert "
                   "(common alert schema), a WebhookData object, a VM resource ID or a JSON list of VM IDs")


def _unwrap(doc: Any) -> Any:
    """The alert inside a WebhookData object ({WebhookName, RequestBody, RequestHeader}), else `doc`."""
    for _ in range(3):
        if not isinstance(doc, dict):
            return doc
        keys = {k.lower(): k for k in doc}
        if "requestbody" not in keys:
            return doc
        body = doc[keys["requestbody"]]
        doc = _json(body) if isinstance(body, str) else body
    return doc


def _vm_target(vm_id: str) -> Target:
    return parse_target(vm_id.rstrip("/"))


def _item_target(item_id: str, vault_sub: str | None) -> Target | None:
    """The VM behind a protected item ID (…/protectedItems/VM;iaasvmcontainerv2;<rg>;<vm>)."""
    m = re.search(r"/protectedItems/vm;iaasvmcontainer(?:v2)?;([^;/]+);([^;/]+)$", item_id, re.I)
    sub = vault_sub or (item_id.split("/")[2] if item_id.lower().startswith("/subscriptions/") else None)
    return Target(subscription=sub, resource_group=m.group(1), name=m.group(2)) if m and sub else None


def _alert_targets(ctx: dict[str, Any], vault_sub: str | None) -> list[Target]:
    found: list[str] = []
    affected = ctx.get("affectedItems")
    items = affected if isinstance(affected, list) else [affected]
    for value in (ctx.get("linkedResourceId"), ctx.get("sourceId"), *items):
        if isinstance(value, dict):
            value = value.get("id") or value.get("resourceId") or value.get("linkedResourceId")
        if isinstance(value, str):
            found += _VM_IN.findall(value)
    targets = {t.id.lower(): t for t in map(_vm_target, found)}
    item = ctx.get("protectedItemId")
    if not targets and isinstance(item, str):
        t = _item_target(item, vault_sub)
        if t is not None:
            targets[t.id.lower()] = t
    return list(targets.values())


def _alert(doc: dict[str, Any]) -> Trigger:
    data = doc.get("data")
    if doc.get("schemaId") != "azureMonitorCommonAlertSchema" or not isinstance(data, dict) \
            or not isinstance(data.get("essentials"), dict):
        raise BadInput(f"not a common-alert-schema alert (schemaId {doc.get('schemaId')!r}); enable the common alert "
                       "schema on the action group's runbook receiver")
    ess, ctx = data["essentials"], data.get("alertContext") or {}
    ctx = ctx if isinstance(ctx, dict) else {}
    targets_ids = [t for t in ess.get("alertTargetIDs") or [] if isinstance(t, str)]
    vault_id = next((t for t in targets_ids if "/microsoft.recoveryservices/vaults/" in t.lower()), None)
    job_id = (ctx.get("extendedInfo") or {}).get("jobId") if isinstance(ctx.get("extendedInfo"), dict) else None
    alert = Alert(str(ess.get("alertRule") or "?"), str(ess.get("monitorCondition") or ""),
                  str(ess.get("monitoringService") or ""), vault_id,
                  job_id or ctx.get("jobId"), ctx.get("category"))
    source = f"alert '{alert.rule}' ({alert.service or 'unknown service'}, {alert.condition or 'no condition'})"
    ignore = None
    item = str(ctx.get("protectedItemId") or "")
    if alert.condition.lower() == "resolved":
        ignore = f"alert '{alert.rule}' is Resolved: nothing to fix"
    elif alert.service.lower() != "azure backup":
        ignore = f"alert '{alert.rule}' comes from {alert.service or 'an unknown service'}, not Azure Backup"
    elif alert.category and alert.category.lower() != "jobs":
        ignore = f"Azure Backup alert '{alert.rule}' is about {alert.category}, not a backup job"
    elif re.search(r"restore|delete", alert.rule, re.I):
        ignore = f"Azure Backup alert '{alert.rule}' is not about a failed backup"
    elif item and "/protecteditems/" in item.lower() and not re.search(r"/protectedItems/vm;", item, re.I):
        ignore = f"Azure Backup alert '{alert.rule}' is for {item.rsplit('/', 1)[-1]}, not a VM backup"
    if ignore:
        return Trigger(source, ignored=ignore, alert=alert)
    targets = _alert_targets(ctx, resource_parts(vault_id)[0] if vault_id else None)
    if not targets:
        return Trigger(source, ignored=f"Azure Backup alert '{alert.rule}' names no virtual machine", alert=alert)
    return Trigger(source, tuple(targets), alert=alert)


def read_trigger(data: str) -> Trigger:
    """Interpret the data argument: a VM resource ID, a JSON list of VM IDs, an alert or a WebhookData object."""
    text = data.strip()
    if text.startswith("/subscriptions/") and _VM_IN.fullmatch(text.rstrip("/")):
        return Trigger("VM resource ID", (_vm_target(text),))
    doc = _unwrap(_json(text))
    if isinstance(doc, list):
        if not doc or not all(isinstance(v, str) and _VM_IN.fullmatch(v.strip().rstrip("/")) for v in doc):
            raise BadInput("a JSON list must hold VM resource IDs only")
        unique = {t.id.lower(): t for t in (_vm_target(v.strip()) for v in doc)}
        return Trigger(f"list of {len(unique)} VM ID(s)", tuple(unique.values()))
    if isinstance(doc, dict):
        return _alert(doc)
    raise BadInput("the data is JSON but neither an alert nor a list of VM resource IDs")


def is_vault_id(text: str) -> bool:
    """Whether `text` is a Recovery Services vault resource ID."""
    m = _RESOURCE.match(text.strip())
    return bool(m and m.group("type").lower() == "microsoft.recoveryservices/vaults")


def resource_parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a top-level resource ID."""
    m = _RESOURCE.match(resource_id.strip())
    if not m:
        raise BadInput(f"not a resource ID: {resource_id!r}")
    return m.group("sub"), m.group("rg"), m.group("name")


