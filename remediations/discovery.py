"""Discovery across subscriptions: the VMs with a failed backup job in the last N hours, from one paged Azure
Resource Graph query over RecoveryServicesResources (the vaults' backup jobs), or from named vaults' job lists
when Resource Graph refuses the query.

- The query (QUERY): `type =~ 'microsoft.recoveryservices/vaults/backupjobs'`, IaaS VM backups
  (`properties.backupManagementType`, `properties.operation`), started after `ago(Nh)` (`properties.startTime`),
  optionally one `properties.status`; the property names are those of Microsoft's ARG sample for failed VM backup
  jobs (azure-docs articles/backup/automation-backup.md, "retry failed backup jobs using Azure Resource Graph").
  It projects `id` (a string column: ARG pages only then, concepts/paging-results) and orders by it.
- Scope: no `subscriptions` in the request is a tenant query, every subscription the identity can read
  (resourcegraph.json's "Basic tenant query" example, ResourcesTenantBasicQuery.json); a list narrows it.
- Paging: `options.$top` rows a page (1..1000) and `$skipToken` sent back until an answer has none
  (ResourcesFirstPageQuery.json / ResourcesNextPageQuery.json). Each page is one read under Azure.call's retries
  (ARG's own quota answers 429 with Retry-After: guidance-for-throttled-requests).
- A row is the job's REST JSON (`properties` as BackupJobs_List has them) and maps to its VM as the vault path
  maps a job (backupjobs.job_target: the container names the VM's group; ARG's `subscriptionId`); refused
  triggers are not failures and each VM keeps its latest failure (backupjobs.latest_failure).
- Refused (a non-transient error, e.g. 403 without Microsoft.ResourceGraph read on the tenant): with vault IDs
  given, their job lists are read instead (BackupJobs_List per vault) and one line says so; without, GraphRefused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from .armid import parse_resource_id
from .azure import Azure, is_transient
from .backupjobs import JobView, job_target, job_view, latest_failure
from .backupreads import vault_jobs
from .errors import RemediationError, arm_error
from .target import Target

__all__ = ["MAX_PAGE", "PAGE_SIZE", "GraphRefused", "failed_vms_everywhere", "graph_jobs", "jobs_everywhere",
           "latest_failures", "query_text"]

PAGE_SIZE = 1000  # rows a page: ARG's maximum $top (resourcegraph.json QueryRequestOptions)
MAX_PAGE = 1000
QUERY = ("RecoveryServicesResources"
         " | where type =~ 'microsoft.recoveryservices/vaults/backupjobs'"
         " | where properties.backupManagementType =~ 'AzureIaasVM' and properties.operation =~ 'Backup'"
         " | where todatetime(properties.startTime) > ago({window}){status}"
         " | project id, name, type, subscriptionId, resourceGroup, properties"
         " | order by id asc")


class GraphRefused(RemediationError):
    """Resource Graph refused the query and no vault was named to read instead."""


def query_text(hours: float, status: str | None = None) -> str:
    """The KQL for IaaS VM backup jobs started in the last `hours` (whole hours, else minutes), optionally one status."""
    window = f"{int(hours)}h" if float(hours).is_integer() else f"{max(1, round(hours * 60))}m"
    return QUERY.format(window=window, status=f" | where properties.status =~ '{status}'" if status else "")


def _row_job(row: dict[str, Any]) -> tuple[Target, JobView] | None:
    """A row as (its VM, the job), or None for a row that names no VM this project can work on."""
    job = job_view(row)
    sub = str(row.get("subscriptionId") or "")
    group = str(row.get("resourceGroup") or "")
    if not sub or not group:
        try:
            rid = parse_resource_id(str(row.get("id") or ""))
        except ValueError:
            return None
        sub, group = sub or rid.subscription, group or rid.resource_group
    try:
        target = job_target(job, sub, group)
    except ValueError:
        return None
    return (target, job) if target is not None else None


def graph_jobs(azure: Azure, hours: float, *, status: str | None = None, subscriptions: Sequence[str] | None = None,
               page_size: int = PAGE_SIZE) -> list[tuple[Target, JobView]]:
    """Every IaaS VM backup job started in the last `hours` (optionally of one status), all pages of one query."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE}")
    text, token = query_text(hours, status), None
    out: list[tuple[Target, JobView]] = []
    while True:
        request = QueryRequest(query=text, subscriptions=list(subscriptions) if subscriptions else None,
                               options=QueryRequestOptions(top=page_size, skip_token=token,
                                                           result_format="objectArray"))
        page = azure.call(azure.graph.resources, request)
        rows = page.data if isinstance(page.data, list) else []
        out += [found for row in rows if isinstance(row, dict) and (found := _row_job(row)) is not None]
        token = page.skip_token
        if not token:
            return out


def _vault_path(azure_for: Callable[[str], Azure], vaults: Iterable[str], hours: float,
                status: str | None) -> list[tuple[Target, JobView]]:
    """The same jobs from each named vault's job list (BackupJobs_List), all pages."""
    now = datetime.now(timezone.utc)
    out: list[tuple[Target, JobView]] = []
    for vault_id in dict.fromkeys(v.rstrip("/") for v in vaults):
        rid = parse_resource_id(vault_id, type="Microsoft.RecoveryServices/vaults")
        for job in vault_jobs(azure_for(rid.subscription), rid.name, rid.resource_group, hours=hours, status=status,
                              now=now):
            if (t := job_target(job, rid.subscription, rid.resource_group)) is not None:
                out.append((t, job))
    return out


def jobs_everywhere(azure: Azure, hours: float, *, status: str | None = None,
                    subscriptions: Sequence[str] | None = None, page_size: int = PAGE_SIZE,
                    vaults: Sequence[str] = (), azure_for: Callable[[str], Azure] | None = None,
                    say: Callable[[str], None] | None = None) -> list[tuple[Target, JobView]]:
    """The jobs from Resource Graph; when it refuses, from the named vaults (saying so in one line), else GraphRefused."""
    from azure.core.exceptions import HttpResponseError

    try:
        return graph_jobs(azure, hours, status=status, subscriptions=subscriptions, page_size=page_size)
    except HttpResponseError as e:
        if is_transient(e):  # retried already by Azure.call: an outage, not a refusal
            raise
        err = arm_error(e)
        why = f"Resource Graph refused the query ({err.code}, {err.status}): {err.message}"
        if not vaults:
            raise GraphRefused(f"{why}; name the vaults instead (fix --from-vault VAULT -g RG, or the sweep's "
                               "vaults=)") from None
    if say is not None:
        say(f"{why}; reading the job lists of {len(set(vaults))} vault(s) instead")
    return _vault_path(azure_for or (lambda _sub: azure), vaults, hours, status)


def latest_failures(jobs: Iterable[tuple[Target, JobView]]) -> list[tuple[Target, JobView]]:
    """Each VM once with its latest failed job (refused triggers aside), in VM ID order."""
    by_vm: dict[str, tuple[Target, list[JobView]]] = {}
    for t, j in jobs:
        by_vm.setdefault(t.id.lower(), (t, []))[1].append(j)
    out = [(t, f) for t, views in by_vm.values() if (f := latest_failure(views)) is not None]
    return sorted(out, key=lambda p: p[0].id.lower())


def failed_vms_everywhere(azure: Azure, hours: float, subscriptions: Sequence[str] | None = None, *,
                          page_size: int = PAGE_SIZE, vaults: Sequence[str] = (),
                          azure_for: Callable[[str], Azure] | None = None,
                          say: Callable[[str], None] | None = None) -> list[tuple[Target, JobView]]:
    """Every VM with a failed backup job in the last `hours` in every subscription in scope, with its latest failure."""
    return latest_failures(jobs_everywhere(azure, hours, status="Failed", subscriptions=subscriptions,
                                           page_size=page_size, vaults=vaults, azure_for=azure_for, say=say))
