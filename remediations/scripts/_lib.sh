# Shared helpers, inlined by remediations.scripts at the marker line of each Linux script (the text sent
# through Run Command is one self-contained script). Not a script of its own.
OS_RELEASE=${RUNBOOKS_OS_RELEASE:-/etc/os-release}
WAAGENT_CONF=${RUNBOOKS_WAAGENT_CONF:-/etc/waagent.conf}

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

# First of walinuxagent/waagent whose systemd unit exists.
find_unit() {
  local u
  for u in walinuxagent waagent; do
    if systemctl cat "$u.service" >/dev/null 2>&1; then printf '%s' "$u"; return 0; fi
  done
  return 1
}

# Agent version from `waagent --version`: the "Goal state agent" (running) version wins over
# the WALinuxAgent-<ver> of the first line. Empty if unknown.
agent_version() {
  local out goal
  out=$(waagent --version 2>/dev/null)
  goal=$(printf '%s\n' "$out" | sed -n 's/^.*Goal state agent:[[:space:]]*\([^[:space:]]*\).*$/\1/p' | head -n 1)
  if [ -n "$goal" ]; then printf '%s' "$goal"; return; fi
  printf '%s\n' "$out" | head -n 1 | sed -n 's/^.*WALinuxAgent-\([^[:space:]]*\).*$/\1/p'
}

# AutoUpdate.Enabled from waagent.conf as true/false (absent key means true); null without the file.
auto_update() {
  local v
  if [ ! -r "$WAAGENT_CONF" ]; then printf 'null'; return; fi
  v=$(sed -n 's/^[[:space:]]*AutoUpdate\.Enabled[[:space:]]*=[[:space:]]*\([^[:space:]#]*\).*$/\1/p' \
    "$WAAGENT_CONF" | tail -n 1 | tr -d '"')
  case "$v" in n|N) printf 'false' ;; *) printf 'true' ;; esac
}
