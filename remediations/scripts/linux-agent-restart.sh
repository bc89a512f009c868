#!/bin/bash
# runbooks-script: linux-agent-restart
# Restarts the Azure Linux guest agent's systemd unit (walinuxagent or waagent) and reports
# whether it is active afterwards.
set -u
SCRIPT_ID=linux-agent-restart

# @lib

if ! unit=$(find_unit); then
  echo "no walinuxagent or waagent systemd unit found" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"no-agent-unit","unit":null,"active":false}\n' "$SCRIPT_ID"
  exit 3
fi

systemctl restart "$unit.service" >&2 || echo "systemctl restart $unit.service failed" >&2
active=$(json_bool systemctl is-active --quiet "$unit.service")

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"active":%s}\n' "$SCRIPT_ID" "$(json_str "$unit")" "$active"
exit 0
