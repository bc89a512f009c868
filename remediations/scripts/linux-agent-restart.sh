#!/bin/bash
# runbooks-script: linux-agent-restart
# Restarts the Azure Linux guest agent's systemd unit (walinuxagent or waagent) and reports
# whether it is active afterwards.
set -u
SCRIPT_ID=linux-agent-restart

# JSON string for $1 (backslashes and quotes escaped, control characters dropped); null if empty.
json_str() {
  if [ -z "${1:-}" ]; then printf 'null'; return; fi
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}

# true/false: whether the command "$@" succeeds.
json_bool() {
  if "$@" >/dev/null 2>&1; then printf 'true'; else printf 'false'; fi
}

# First of walinuxagent/waagent whose systemd unit exists.
find_unit() {
  local u
  for u in walinuxagent waagent; do
    if systemctl cat "$u.service" >/dev/null 2>&1; then printf '%s' "$u"; return 0; fi
  done
  return 1
}

if ! unit=$(find_unit); then
  echo "no walinuxagent or waagent systemd unit found" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"no-agent-unit","unit":null,"active":false}\n' "$SCRIPT_ID"
  exit 3
fi

systemctl restart "$unit.service" >&2 || echo "systemctl restart $unit.service failed" >&2
active=$(json_bool systemctl is-active --quiet "$unit.service")

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"active":%s}\n' "$SCRIPT_ID" "$(json_str "$unit")" "$active"
exit 0
