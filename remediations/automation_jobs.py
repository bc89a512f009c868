"""Azure Automation jobs through the client layer: start a runbook job, read one, list an account's jobs.

Every call runs under `Azure.call` (the one retry owner). Jobs are returned as their REST JSON
(`model.as_dict()`), so callers do not depend on one SDK version's attribute names.
"""

from __future__ import annotations

from typing import Any

from .armid import parse_resource_id
from .azure import Azure

__all__ = ["ACCOUNT_TYPE", "get_job", "job_output", "job_status", "list_jobs", "start_runbook_job"]

ACCOUNT_TYPE = "Microsoft.Automation/automationAccounts"


def _account(account_id: str) -> tuple[str, str]:
    """(resource group, account name) of an Automation account ID; ValueError when it is not one."""
    rid = parse_resource_id(account_id, type=ACCOUNT_TYPE)
    return rid.resource_group, rid.name


def start_runbook_job(azure: Azure, account_id: str, name: str, runbook: str, parameters: dict[str, str],
                      run_on: str | None = None) -> None:
    """Start job `name` of `runbook` with `parameters` (Job_Create; on a Hybrid Worker group when `run_on`)."""
    from azure.mgmt.automation import models

    group, account = _account(account_id)
    body = models.JobCreateParameters(properties=models.JobCreateProperties(
        runbook=models.RunbookAssociationProperty(name=runbook), parameters=parameters, run_on=run_on))
    azure.call(azure.automation.job.create, group, account, name, body)


def get_job(azure: Azure, account_id: str, name: str) -> dict[str, Any]:
    """Job `name` as its REST JSON (Job_Get: status, runbook, parameters, times)."""
    group, account = _account(account_id)
    return dict(azure.call(azure.automation.job.get, group, account, name).as_dict())


def job_status(azure: Azure, account_id: str, name: str) -> str:
    """Job `name`'s status (New, Running, Completed, Failed, …); '' when Automation reports none."""
    job = get_job(azure, account_id, name)
    return str((job.get("properties") or {}).get("status") or job.get("status") or "")


def list_jobs(azure: Azure, account_id: str) -> list[dict[str, Any]]:
    """Every job of the account as REST JSON, all pages (Job_ListByAutomationAccount: no parameters)."""
    group, account = _account(account_id)
    return azure.call(lambda: [j.as_dict() for j in azure.automation.job.list_by_automation_account(group, account)])


def job_output(azure: Azure, account_id: str, name: str) -> str:
    """Job `name`'s output stream as text (Job_GetOutput, text/plain)."""
    group, account = _account(account_id)
    return str(azure.call(azure.automation.job.get_output, group, account, name))
