#!/bin/bash
# runbooks-script: linux-agent-restart
# Schedules a restart of the Azure Linux guest agent's systemd unit (walinuxagent or waagent) a few seconds
# out, detached from this script, and returns at once. Run Command runs through that agent: restarting it
# inline leaves the Run Command Transitioning until it times out (run-command.md, "don't run a script that
# stops or updates the VM agent"). The caller then follows the instance view until the agent reports Ready
# with a status time after `restart_at`.
set -u
SCRIPT_ID=linux-agent-restart

# @lib

# The detached job ($1: the unit). It runs outside this script, after RESTART_DELAY seconds.
AGENT_JOB='
systemctl restart "$1.service"
'

if ! unit=$(find_unit); then
  echo "no walinuxagent or waagent systemd unit found" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"no-agent-unit","unit":null,"scheduled":false}\n' "$SCRIPT_ID"
  exit 3
fi

if ! how=$(schedule_detached "$AGENT_JOB" "$unit"); then
  echo "neither systemd-run nor setsid/nohup is available to restart $unit.service detached" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"cannot-detach","unit":%s,"scheduled":false}\n' \
    "$SCRIPT_ID" "$(json_str "$unit")"
  exit 5
fi

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"scheduled":true,"how":"%s","delay":%s,"restart_at":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$unit")" "$how" "$RESTART_DELAY" "$(json_str "$(restart_at)")"
exit 0
