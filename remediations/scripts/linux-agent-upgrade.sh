#!/bin/bash
# runbooks-script: linux-agent-upgrade
# Upgrades the Azure Linux guest agent from the distro's own repositories (never from source), sets
# AutoUpdate.Enabled=y in waagent.conf, enables the unit at boot and restarts it.
set -u
SCRIPT_ID=linux-agent-upgrade
# @lib

# Make waagent.conf say AutoUpdate.Enabled=y: rewrite the key's lines, or append it when absent.
# The file is only touched when it differs, and never created (it belongs to the agent package).
set_auto_update() {
  local key='^[[:space:]]*AutoUpdate\.Enabled[[:space:]]*='
  if [ ! -f "$WAAGENT_CONF" ]; then echo "$WAAGENT_CONF not found; AutoUpdate.Enabled not set" >&2; return; fi
  if ! grep -q "$key" "$WAAGENT_CONF"; then
    printf 'AutoUpdate.Enabled=y\n' >>"$WAAGENT_CONF"
  elif grep "$key" "$WAAGENT_CONF" | grep -qvx 'AutoUpdate\.Enabled=y'; then
    sed -i "s/$key.*\$/AutoUpdate.Enabled=y/" "$WAAGENT_CONF"
  fi
}

distro=$(os_field ID)
case "$distro" in
  ubuntu|debian) pm=apt pkg=walinuxagent ;;
  rhel|centos|almalinux|rocky|ol|fedora|azurelinux|mariner)
    pkg=WALinuxAgent
    if command -v dnf >/dev/null 2>&1; then pm=dnf
    elif command -v yum >/dev/null 2>&1; then pm=yum
    else pm=""; fi ;;
  sles|opensuse*) pm=zypper pkg=python-azure-agent ;;
  *)
    echo "unsupported distro: '$distro'" >&2
    printf 'RUNBOOKS_RESULT {"script":"%s","error":"unsupported-distro","distro":%s}\n' "$SCRIPT_ID" "$(json_str "$distro")"
    exit 3 ;;
esac

if ! unit=$(find_unit); then
  echo "no walinuxagent or waagent systemd unit found" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"no-agent-unit","unit":null,"package":%s,"package_manager":%s}\n' \
    "$SCRIPT_ID" "$(json_str "$pkg")" "$(json_str "$pm")"
  exit 3
fi

before=$(agent_version)
# Package manager output goes to stderr so stdout stays small (Run Command truncates it).
case "$pm" in
  apt)
    apt-get update >&2 || echo "apt-get update failed; trying the upgrade anyway" >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      install -y --only-upgrade walinuxagent >&2
    rc=$? ;;
  dnf|yum) "$pm" -y update WALinuxAgent >&2; rc=$? ;;
  zypper)
    zypper --non-interactive update python-azure-agent >&2; rc=$?
    case "$rc" in 10[0-3]|106) rc=0 ;; esac ;;  # informational codes (reboot/restart needed, ...)
  *) echo "neither dnf nor yum is installed" >&2; rc=127 ;;
esac
if [ "$rc" -ne 0 ]; then
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"upgrade-failed","exit_code":%s,"unit":%s,"package":%s,"package_manager":%s,"before":%s}\n' \
    "$SCRIPT_ID" "$rc" "$(json_str "$unit")" "$(json_str "$pkg")" "$(json_str "$pm")" "$(json_str "$before")"
  exit 4
fi

set_auto_update
systemctl enable "$unit.service" >&2 || echo "systemctl enable $unit.service failed" >&2
systemctl restart "$unit.service" >&2 || echo "systemctl restart $unit.service failed" >&2

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"package":%s,"package_manager":%s,"before":%s,"after":%s,"auto_update":%s,"enabled":%s,"active":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$unit")" "$(json_str "$pkg")" "$(json_str "$pm")" "$(json_str "$before")" \
  "$(json_str "$(agent_version)")" "$(auto_update)" \
  "$(json_bool systemctl is-enabled --quiet "$unit.service")" "$(json_bool systemctl is-active --quiet "$unit.service")"
exit 0
