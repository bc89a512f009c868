"""Reading what triggers a runbook: an Azure Monitor alert (common alert schema), a webhook wrapper, a VM
or vault resource ID, or a JSON list of VM IDs. Parsing only: no I/O, no Azure calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remediations.armid import ResourceId, parse_resource_id
from remediations.errors import BadInput
from remediations.target import Target, parse_target

__all__ = ["MAX_DATA", "MAX_DEPTH", "Alert", "Nesting", "Trigger", "is_vault_id", "nesting", "read_trigger", "resource_parts"]

MAX_DATA = 1 << 20  # characters of data an entry script reads (a real alert is a few KB)
MAX_DEPTH = 64  # JSON nesting levels (the common alert schema needs fewer than 10)

# Finds VM IDs inside free text (an alert's fields); whole IDs are parsed by remediations.armid.
_VM_IN = re.compile(r"/subscriptions/[^/\s\"]+/resourceGroups/[^/\s\"]+/providers/Microsoft\.Compute/"
                    r"virtualMachines/[A-Za-z0-9_.-]+", re.I)
_VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
_JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


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


@dataclass
class Nesting:
    """A running scan of JSON text: the deepest [ / { nesting seen and the nesting still open (strings ignored)."""

    deepest: int = 0
    depth: int = 0
    in_string: bool = False
    escaped: bool = False

    def feed(self, text: str) -> Nesting:
        """Scan more text; returns self."""
        for c in text:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif c == "\\":
                    self.escaped = True
                elif c == '"':
                    self.in_string = False
            elif c == '"':
                self.in_string = True
            elif c in "[{":
                self.depth += 1
                self.deepest = max(self.deepest, self.depth)
            elif c in "]}":
                self.depth = max(self.depth - 1, 0)
        return self


def nesting(text: str) -> tuple[int, int]:
    """(the deepest [ / { nesting in `text`, the nesting still open at its end), ignoring JSON strings."""
    n = Nesting().feed(text)
    return n.deepest, n.depth


def _json(text: str) -> Any:
    """JSON from `text`, also when it is embedded in a wrapper (e.g. a PowerShell-style WebhookData string)."""
    if len(text) > MAX_DATA:
        raise BadInput(f"the data is {len(text)} characters; at most {MAX_DATA} are read")
    if nesting(text)[0] > MAX_DEPTH:
        raise BadInput(f"the data nests deeper than {MAX_DEPTH} levels")
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
    """The VM a whole VM resource ID names (a trailing '/' ignored)."""
    return parse_target(vm_id.rstrip("/"))


def _item_target(item_id: str, vault_sub: str | None) -> Target | None:
    """The VM behind a protected item ID (…/protectedItems/VM;iaasvmcontainerv2;<rg>;<vm>)."""
    m = re.search(r"/protectedItems/vm;iaasvmcontainer(?:v2)?;([^;/]+);([^;/]+)$", item_id, re.I)
    sub = vault_sub or (item_id.split("/")[2] if item_id.lower().startswith("/subscriptions/") else None)
    if not (m and sub):
        return None
    try:
        return Target(subscription=sub, resource_group=m.group(1), name=m.group(2))
    except ValidationError as e:
        raise BadInput(f"protectedItemId names no valid VM: {str(e.errors()[0].get('msg', e)).removeprefix('Value error, ')}"
                       ) from None


def _alert_targets(ctx: dict[str, Any], vault_sub: str | None) -> list[Target]:
    """The VMs an alert's context names (linked, source, affected IDs), else its protected item's VM."""
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


def _sections(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(essentials, alertContext) of a common-alert-schema alert; BadInput for any other document."""
    data = doc.get("data")
    if doc.get("schemaId") != "azureMonitorCommonAlertSchema" or not isinstance(data, dict) \
            or not isinstance(data.get("essentials"), dict):
        raise BadInput(f"not a common-alert-schema alert (schemaId {doc.get('schemaId')!r}); enable the common alert "
                       "schema on the action group's runbook receiver")
    ctx = data.get("alertContext") or {}
    return data["essentials"], ctx if isinstance(ctx, dict) else {}


def _job_id(ctx: dict[str, Any]) -> str | None:
    """The backup job the alert names (extendedInfo.jobId, else jobId): its name, also when given as a resource ID."""
    ext = ctx.get("extendedInfo")
    job_id = (ext.get("jobId") if isinstance(ext, dict) else None) or ctx.get("jobId")
    for key, value in (("category", ctx.get("category")), ("jobId", job_id), ("protectedItemId", ctx.get("protectedItemId"))):
        if value is not None and not isinstance(value, str):
            raise BadInput(f"alertContext.{key} is a {type(value).__name__}, not a string")
    if job_id is None:
        return None
    job_id = job_id.rstrip("/").rsplit("/", 1)[-1]
    if not _JOB_ID.fullmatch(job_id):
        raise BadInput("alertContext jobId is not a backup job ID")
    return job_id


def _read_alert(ess: dict[str, Any], ctx: dict[str, Any]) -> Alert:
    """The Alert in an alert's essentials and context (checked: string fields, a well-formed job ID)."""
    targets = [t for t in ess.get("alertTargetIDs") or [] if isinstance(t, str)]
    vault_id = next((t for t in targets if "/microsoft.recoveryservices/vaults/" in t.lower()), None)
    job_id = _job_id(ctx)
    return Alert(str(ess.get("alertRule") or "?"), str(ess.get("monitorCondition") or ""),
                 str(ess.get("monitoringService") or ""), vault_id, job_id, ctx.get("category"))


def _ignore_reason(alert: Alert, item: str) -> str | None:
    """Why the alert asks for no fix (resolved, not Azure Backup, not a failed VM backup job), or None."""
    if alert.condition.lower() == "resolved":
        return f"alert '{alert.rule}' is Resolved: nothing to fix"
    if alert.service.lower() != "azure backup":
        return f"alert '{alert.rule}' comes from {alert.service or 'an unknown service'}, not Azure Backup"
    if alert.category and alert.category.lower() != "jobs":
        return f"Azure Backup alert '{alert.rule}' is about {alert.category}, not a backup job"
    if re.search(r"restore|delete", alert.rule, re.I):
        return f"Azure Backup alert '{alert.rule}' is not about a failed backup"
    if item and "/protecteditems/" in item.lower() and not re.search(r"/protectedItems/vm;", item, re.I):
        return f"Azure Backup alert '{alert.rule}' is for {item.rsplit('/', 1)[-1]}, not a VM backup"
    return None


def _alert(doc: dict[str, Any]) -> Trigger:
    """The Trigger of a common-alert-schema alert: its VMs, or why it is ignored."""
    ess, ctx = _sections(doc)
    alert = _read_alert(ess, ctx)
    source = f"alert '{alert.rule}' ({alert.service or 'unknown service'}, {alert.condition or 'no condition'})"
    ignore = _ignore_reason(alert, str(ctx.get("protectedItemId") or ""))
    if ignore:
        return Trigger(source, ignored=ignore, alert=alert)
    targets = _alert_targets(ctx, resource_parts(alert.vault_id)[0] if alert.vault_id else None)
    if not targets:
        return Trigger(source, ignored=f"Azure Backup alert '{alert.rule}' names no virtual machine", alert=alert)
    return Trigger(source, tuple(targets), alert=alert)


def read_trigger(data: str) -> Trigger:
    """Interpret the data argument: a VM resource ID, a JSON list of VM IDs, an alert or a WebhookData object."""
    text = data.strip()
    if text.startswith("/subscriptions/") and _VM_IN.fullmatch(text.rstrip("/")):
        return Trigger("VM resource ID", (_vm_target(text),))
    doc = _unwrap(_json(text))
    for _ in range(3):  # the serialized alert, serialized again (a JSON string literal), maybe twice
        if not isinstance(doc, str):
            break
        doc = _unwrap(_json(doc))
    if isinstance(doc, list):
        if not doc or not all(isinstance(v, str) and _VM_IN.fullmatch(v.strip().rstrip("/")) for v in doc):
            raise BadInput("a JSON list must hold VM resource IDs only")
        unique = {t.id.lower(): t for t in (_vm_target(v.strip()) for v in doc)}
        return Trigger(f"list of {len(unique)} VM ID(s)", tuple(unique.values()))
    if isinstance(doc, dict):
        return _alert(doc)
    raise BadInput("the data is JSON but neither an alert nor a list of VM resource IDs")


def _top_level(resource_id: str) -> ResourceId | None:
    """A top-level resource ID (leading '/', one type and name), parsed; None for anything else."""
    text = resource_id.strip()
    try:
        rid = parse_resource_id(text)
    except ValueError:
        return None
    return rid if text.startswith("/") and len(rid.types) == 1 else None


def is_vault_id(text: str) -> bool:
    """Whether `text` is a Recovery Services vault resource ID."""
    rid = _top_level(text)
    return rid is not None and rid.type.lower() == _VAULT_TYPE.lower()


def resource_parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a top-level resource ID."""
    rid = _top_level(resource_id)
    if rid is None:
        raise BadInput(f"not a resource ID: {resource_id!r}")
    return rid.subscription, rid.resource_group, rid.name
