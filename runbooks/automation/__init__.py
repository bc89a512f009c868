"""The Azure Automation adapter: everything the entry scripts (azure-automation/*.py) import, and all they may.

The scripts import only this package (`from runbooks import automation as aa`, its `sweep` module)
and `runbooks.render`; never `remediations` directly. Modules:

- settings: positional `key=value` arguments and RUNBOOKS_<KEY> into typed Settings (default dry-run);
- protocol: stdout progress lines, then one JSON summary line, always last (Output);
- alerts: what triggers a runbook (alert, WebhookData, VM or vault ID, list of VM IDs); parsing only;
- clients: clients for a subscription, the backup job an alert names, one VM's fix (engine.run);
- children: one child job per VM, bounded, within an error budget, resumed on a rerun (fan_out; runbooks.schedule);
- sweep: the hourly backstop's plan; relay: the PowerShell relay's contract, stated in Python.
"""

from __future__ import annotations

from remediations.errors import BadInput
from remediations.inventory import failed_vms

from .alerts import Alert, Trigger, is_vault_id, read_trigger, resource_parts
from .children import TERMINAL_JOB, Child, child_parameters, fan_out
from .clients import alert_error, connect, fix_one, job_error, read_job
from .protocol import Output, Say, overall, start, vm_entry
from .settings import ENTRIES, FORWARDED, Settings, parse_argv, resolve

__all__ = ["ENTRIES", "FORWARDED", "TERMINAL_JOB", "Alert", "BadInput", "Child", "Output", "Say", "Settings", "Trigger",
           "alert_error", "child_parameters", "connect", "failed_vms", "fan_out", "fix_one", "is_vault_id", "job_error",
           "overall", "parse_argv", "read_job", "read_trigger", "resolve", "resource_parts", "start", "vm_entry"]
