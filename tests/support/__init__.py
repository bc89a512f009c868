"""Helpers the test modules share: import them from here (`from support.runs import cli`), never from another
test module. Shared data (the demo fleet's VM names, the transient faults, FAST_RETRY) is in conftest.py.

- `runs`: run `python -m runbooks` or an Automation entry script against armsim, as a person or Automation does.
- `prefork`: the warm interpreter those runs start from (see its docstring; TESTS_PREFORK=0 starts them cold).
- `demo`: the demo fleet's place and armsim's model of a VM; `automation`: the deployment's IDs and payloads.
- `egress`, `guest`: an action's params for a demo VM, and NSG rules in armsim's model.
- `linux_guest`: a fake Linux guest the Run Command scripts run against under bash and dash.
- `rbac`: azure-automation/rbac-map.json read once (request -> RBAC action).
- `terminal`: the CLI in a real terminal (pexpect pty) against armsim.
"""
