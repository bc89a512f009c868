#!/bin/bash
# runbooks-script: linux-agent-upgrade
# Upgrades the Azure Linux guest agent from the distro's own repositories (never from source), turns
# auto-update on in waagent.conf and enables the unit at boot. The package's own maintainer scripts
# restart the agent (Debian's postinst runs `deb-systemd-invoke restart walinuxagent.service`), and
# Run Command runs through that agent: an inline upgrade or restart leaves the Run Command
# Transitioning until it times out (run-command.md). So this script only checks, configures and
# downloads the package here; installing it and restarting the unit run detached, RESTART_DELAY
# seconds after the script has returned (systemd-run --on-active, or setsid nohup without systemd-run).
# The caller follows the instance view until the agent is Ready with a status time after `restart_at`,
# then reads the new version with linux-agent-status.
set -u
SCRIPT_ID=linux-agent-upgrade
# @lib

# Make waagent.conf leave auto-update on: every AutoUpdate.UpdateToLatestVersion (read by newer agents)
# and AutoUpdate.Enabled (deprecated, still read by older agents) line that is not y becomes y. A file
# with neither key is left alone (both default to on). The file is only touched when a line differs,
# and never created (it belongs to the agent package).
set_auto_update() {
  if [ ! -f "$WAAGENT_CONF" ]; then echo "$WAAGENT_CONF not found; auto-update not set" >&2; return; fi
  for key in 'AutoUpdate\.UpdateToLatestVersion' 'AutoUpdate\.Enabled'; do
    pattern="^[[:space:]]*$key[[:space:]]*="
    if grep "$pattern" "$WAAGENT_CONF" | grep -qvx "$key=y"; then
      sed -i "s/$pattern.*\$/$key=y/" "$WAAGENT_CONF"
    fi
  done
}

# The detached job: $1 package manager, $2 package, $3 unit, $4 log file. The install comes from the
# cache the download below filled; the restart makes the unit run the new version whatever the
# maintainer scripts did.
AGENT_JOB='
exec >>"$4" 2>&1
echo "runbooks: upgrading $2 with $1"
case "$1" in
  apt) DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y --only-upgrade "$2" ;;
  dnf|yum) "$1" -y update "$2" ;;
  zypper) zypper --non-interactive update "$2" ;;
esac
echo "runbooks: upgrade exit code $?"
systemctl restart "$3.service"
echo "runbooks: restart exit code $?"
'

# Package names per distribution: update-linux-agent.md (MicrosoftDocs/azure-compute-docs
# articles/virtual-machines/extensions): Ubuntu walinuxagent, Debian waagent, Red Hat / CentOS /
# Oracle Linux WALinuxAgent, SLES python-azure-agent.
distro=$(os_field ID)
case "$distro" in
  ubuntu) pm=apt pkg=walinuxagent ;;
  debian) pm=apt pkg=waagent ;;
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
# Download only (no install, so nothing restarts the agent yet); a repository or network failure shows
# here. Package manager output goes to stderr so stdout stays small (Run Command keeps the last 4,096 bytes).
case "$pm" in
  apt)
    apt-get update >&2 || echo "apt-get update failed; trying the download anyway" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --only-upgrade --download-only "$pkg" >&2
    rc=$? ;;
  dnf|yum) "$pm" -y update --downloadonly "$pkg" >&2; rc=$? ;;
  zypper)
    zypper --non-interactive update --download-only "$pkg" >&2; rc=$?
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

if ! how=$(schedule_detached "$AGENT_JOB" "$pm" "$pkg" "$unit" "$JOB_LOG"); then
  echo "neither systemd-run nor setsid/nohup is available to run the upgrade detached" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"cannot-detach","unit":%s,"package":%s,"package_manager":%s,"before":%s}\n' \
    "$SCRIPT_ID" "$(json_str "$unit")" "$(json_str "$pkg")" "$(json_str "$pm")" "$(json_str "$before")"
  exit 5
fi

printf 'RUNBOOKS_RESULT {"script":"%s","unit":%s,"package":%s,"package_manager":%s,"before":%s,"auto_update":%s,"enabled":%s,"scheduled":true,"how":"%s","delay":%s,"restart_at":%s,"log":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$unit")" "$(json_str "$pkg")" "$(json_str "$pm")" "$(json_str "$before")" \
  "$(auto_update)" "$(json_bool systemctl is-enabled --quiet "$unit.service")" "$how" "$RESTART_DELAY" \
  "$(json_str "$(restart_at)")" "$(json_str "$JOB_LOG")"
exit 0
