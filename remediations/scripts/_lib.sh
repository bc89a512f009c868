# Shared helpers, inlined by remediations.scripts at the marker line of each Linux script (the text sent
# through Run Command is one self-contained script). Not a script of its own. POSIX sh: the scripts
# must run under dash (/bin/sh on Debian and Ubuntu) as well as bash.
OS_RELEASE=${RUNBOOKS_OS_RELEASE:-/etc/os-release}
WAAGENT_CONF=${RUNBOOKS_WAAGENT_CONF:-/etc/waagent.conf}
JOB_LOG=${RUNBOOKS_JOB_LOG:-/var/log/azure-runbooks-agent-job.log}
# Seconds between the script's end and the detached agent restart (digits only, else 10).
RESTART_DELAY=${RUNBOOKS_RESTART_DELAY:-10}
case "$RESTART_DELAY" in ''|*[!0-9]*) RESTART_DELAY=10 ;; esac

# JSON string for $1 (backslashes and quotes escaped, control characters dropped); null if empty.
json_str() {
  if [ -z "${1:-}" ]; then printf 'null'; return; fi
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}

# true/false: whether the command "$@" succeeds.
json_bool() {
  if "$@" >/dev/null 2>&1; then printf 'true'; else printf 'false'; fi
}

# Value of KEY=... in os-release with its quotes removed. The file is parsed, never sourced.
os_field() {
  [ -r "$OS_RELEASE" ] || return 0
  sed -n "s/^$1=//p" "$OS_RELEASE" | tail -n 1 |
    sed -e "s/^'\(.*\)'\$/\1/" -e '/^"/{s/^"\(.*\)"$/\1/;s/\\\(.\)/\1/g;}'
}

# First of walinuxagent/waagent whose systemd unit exists. Ubuntu and Debian ship walinuxagent.service
# (Debian's package is named waagent but its unit is walinuxagent.service); RHEL-family and SLES waagent.
find_unit() {
  for u in walinuxagent waagent; do
    if systemctl cat "$u.service" >/dev/null 2>&1; then printf '%s' "$u"; return 0; fi
  done
  return 1
}

# Agent version from `waagent --version`: the "Goal state agent" (running) version wins over
# the WALinuxAgent-<ver> of the first line. Empty if unknown.
agent_version() {
  av_out=$(waagent --version 2>/dev/null)
  av_goal=$(printf '%s\n' "$av_out" | sed -n 's/^.*Goal state agent:[[:space:]]*\([^[:space:]]*\).*$/\1/p' | head -n 1)
  if [ -n "$av_goal" ]; then printf '%s' "$av_goal"; return; fi
  printf '%s\n' "$av_out" | head -n 1 | sed -n 's/^.*WALinuxAgent-\([^[:space:]]*\).*$/\1/p'
}

# The last value of waagent.conf key $1 (dots escaped by the caller), empty when absent.
conf_value() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([^[:space:]#]*\).*\$/\1/p" "$WAAGENT_CONF" | tail -n 1 | tr -d '"'
}

# Auto-update as true/false; null without waagent.conf. Newer agents read AutoUpdate.UpdateToLatestVersion
# and deprecate AutoUpdate.Enabled, older ones read only AutoUpdate.Enabled; absent keys default to on.
# It is false when either key says n, since the agent that reads that key would not update itself.
auto_update() {
  if [ ! -r "$WAAGENT_CONF" ]; then printf 'null'; return; fi
  for au_key in 'AutoUpdate\.UpdateToLatestVersion' 'AutoUpdate\.Enabled'; do
    case "$(conf_value "$au_key")" in n|N) printf 'false'; return ;; esac
  done
  printf 'true'
}

# Run the fixed job text $1 with arguments "$2"... RESTART_DELAY seconds from now, outside this process
# tree, so restarting the agent cannot take the running Run Command down with it: a transient systemd
# timer (systemd-run --on-active; the job runs in its own unit, not in the agent's cgroup), else a
# setsid'd nohup sh that sleeps first. Prints how it was scheduled (systemd-run/setsid); fails if neither.
schedule_detached() {
  sd_job=$1; shift
  if command -v systemd-run >/dev/null 2>&1 &&
     systemd-run --on-active="$RESTART_DELAY" --timer-property=AccuracySec=1s \
       /bin/sh -c "$sd_job" runbooks-agent-job "$@" >&2; then
    printf 'systemd-run'; return 0
  fi
  if command -v setsid >/dev/null 2>&1 && command -v nohup >/dev/null 2>&1; then
    setsid nohup /bin/sh -c 'sleep "$1"; shift; exec /bin/sh -c "$@"' runbooks-agent-job \
      "$RESTART_DELAY" "$sd_job" runbooks-agent-job "$@" >>"$JOB_LOG" 2>&1 </dev/null &
    printf 'setsid'; return 0
  fi
  return 1
}

# UTC time RESTART_DELAY seconds from now (ISO 8601), the earliest the restarted agent can report.
restart_at() {
  date -u -d "@$(( $(date -u +%s) + RESTART_DELAY ))" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null
}
