#!/bin/bash
# runbooks-script: linux-agent-status
# Reports the Azure Linux guest agent's unit, state, version, distro, package manager and package, and
# whether waagent.conf leaves auto-update on. Read-only: changes nothing on the guest.
set -u
SCRIPT_ID=linux-agent-status
# @lib

distro=$(os_field ID)
# Package names: update-linux-agent.md (MicrosoftDocs/azure-compute-docs articles/virtual-machines/extensions).
case "$distro" in
  ubuntu) pm=apt pkg=walinuxagent ;;
  debian) pm=apt pkg=waagent ;;
  rhel|centos|almalinux|rocky|ol|fedora|azurelinux|mariner)
    pkg=WALinuxAgent
    if command -v dnf >/dev/null 2>&1; then pm=dnf
    elif command -v yum >/dev/null 2>&1; then pm=yum
    else pm=""; fi ;;
  sles|opensuse*) pm=zypper pkg=python-azure-agent ;;
  *) pm="" pkg="" ;;
esac

if unit=$(find_unit); then
  active=$(json_bool systemctl is-active --quiet "$unit.service")
  enabled=$(json_bool systemctl is-enabled --quiet "$unit.service")
else
  unit="" active=false enabled=false
fi

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"active":%s,"enabled":%s,"version":%s,"distro":%s,"distro_version":%s,"package_manager":%s,"package":%s,"auto_update":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$unit")" "$active" "$enabled" "$(json_str "$(agent_version)")" \
  "$(json_str "$distro")" "$(json_str "$(os_field VERSION_ID)")" "$(json_str "$pm")" "$(json_str "$pkg")" \
  "$(auto_update)"
exit 0
