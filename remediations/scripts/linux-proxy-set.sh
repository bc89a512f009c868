#!/bin/bash
# runbooks-script: linux-proxy-set
# Sets the HTTP proxy that the Azure Linux agent and the backup extension use to PROXY, the one Run Command
# parameter (an environment variable, never part of this text), re-validated here: exactly
# http://<IPv4 or hostname>:<port>, anything else is refused (bad-proxy, exit 2, nothing changed).
# It writes HttpProxy.Host/HttpProxy.Port in /etc/waagent.conf (read by the agent, which prefers them to its
# environment, and by the Linux backup extension: Azure/WALinuxAgent restutil.py `_get_http_proxy`,
# Azure/azure-linux-extensions VMBackup/main/HttpUtil.py; Azure Backup's backup-azure-arm-vms-prepare.md
# "For Linux machines") and the agent unit's environment through a systemd drop-in
# /etc/systemd/system/<unit>.service.d/http-proxy.conf with http_proxy and https_proxy (WALinuxAgent README
# "HTTP Proxy": the agent passes its environment to the extensions). It reads, compares and writes only what
# differs; when something changed it restarts the agent detached, exactly as linux-agent-restart does (the
# agent reads both at start), after a daemon-reload so that systemd sees the drop-in.
set -u
SCRIPT_ID=linux-proxy-set
SYSTEMD_DIR=${RUNBOOKS_SYSTEMD_DIR:-/etc/systemd/system}
DROPIN=http-proxy.conf

# @lib

# The detached job ($1: the unit). It runs outside this script, after RESTART_DELAY seconds.
AGENT_JOB='
systemctl daemon-reload
systemctl restart "$1.service"
'

# Whether $1 is exactly http://<IPv4 or hostname>:<port 1-65535>; sets vp_host and vp_port. Only letters,
# digits, dots, hyphens, one colon and the scheme's slashes pass, so neither value can carry shell or sed syntax.
valid_proxy() {
  case "$1" in ''|*[!A-Za-z0-9.:/-]*) return 1 ;; http://*) ;; *) return 1 ;; esac
  vp_hp=${1#http://}
  case "$vp_hp" in *:*:*|*/*|:*|*:) return 1 ;; *:*) ;; *) return 1 ;; esac
  vp_host=${vp_hp%:*} vp_port=${vp_hp#*:}
  case "$vp_port" in *[!0-9]*|0*) return 1 ;; esac
  [ "${#vp_port}" -le 5 ] && [ "$vp_port" -le 65535 ] || return 1
  [ "${#vp_host}" -le 253 ] || return 1
  case "$vp_host" in .*|*.|*..*) return 1 ;; esac
  vp_labels=0 vp_numeric=0 vp_last=
  vp_ifs=$IFS; IFS=.
  for vp_label in $vp_host; do
    vp_labels=$((vp_labels + 1)) vp_last=$vp_label
    case "$vp_label" in -*|*-) IFS=$vp_ifs; return 1 ;; esac
    [ "${#vp_label}" -le 63 ] || { IFS=$vp_ifs; return 1; }
    case "$vp_label" in *[!0-9]*) ;; *)
      vp_numeric=$((vp_numeric + 1))
      case "$vp_label" in 0?*) IFS=$vp_ifs; return 1 ;; esac
      [ "${#vp_label}" -le 3 ] && [ "$vp_label" -le 255 ] || { IFS=$vp_ifs; return 1; } ;;
    esac
  done
  IFS=$vp_ifs
  if [ "$vp_numeric" -eq "$vp_labels" ]; then [ "$vp_labels" -eq 4 ]; return; fi  # all digits: an IPv4
  case "$vp_last" in *[!0-9]*) return 0 ;; *) return 1 ;; esac  # a hostname's last label is not all digits
}

# waagent.conf value of $1 (escaped key), empty when absent, unreadable or the agent's "None".
conf_proxy_value() {
  [ -r "$WAAGENT_CONF" ] || return 0
  cpv=$(conf_value "$1")
  [ "$cpv" = None ] || printf '%s' "$cpv"
}

# Set waagent.conf key $1 (escaped) / $2 (plain) to $3: every uncommented line of it, else one line appended.
set_conf() {
  if [ -f "$WAAGENT_CONF" ] && grep -q "^[[:space:]]*$1[[:space:]]*=" "$WAAGENT_CONF"; then
    sed -i "s/^[[:space:]]*$1[[:space:]]*=.*\$/$2=$3/" "$WAAGENT_CONF"
  else
    if [ -s "$WAAGENT_CONF" ] && [ -n "$(tail -c 1 "$WAAGENT_CONF")" ]; then echo >> "$WAAGENT_CONF"; fi
    printf '%s=%s\n' "$2" "$3" >> "$WAAGENT_CONF"
  fi
}

fail() {  # $1 error, $2 exit code, $3 message; nothing has changed when this is called
  echo "$3" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"%s","changed":false,"scheduled":false}\n' "$SCRIPT_ID" "$1"
  exit "$2"
}

if ! valid_proxy "${PROXY-}"; then
  fail bad-proxy 2 "PROXY must be exactly http://<IPv4 or hostname>:<port>; nothing was changed"
fi
host=$vp_host port=$vp_port after="http://$vp_host:$vp_port"
unit=$(find_unit) || fail no-agent-unit 3 "no walinuxagent or waagent systemd unit found; nothing was changed"

conf_host=$(conf_proxy_value 'HttpProxy\.Host')
conf_port=$(conf_proxy_value 'HttpProxy\.Port')
before=
if [ -n "$conf_host" ]; then before="http://$conf_host${conf_port:+:$conf_port}"; fi
dropin_dir="$SYSTEMD_DIR/$unit.service.d"
want=$(printf '%s\n%s\n%s' "# Written by azure-backup-runbooks (linux-proxy-set): the agent's HTTP proxy." \
  "[Service]" "Environment=\"http_proxy=$after\" \"https_proxy=$after\"")
have=
[ -r "$dropin_dir/$DROPIN" ] && have=$(sed '' "$dropin_dir/$DROPIN" 2>/dev/null)

if [ "$conf_host" = "$host" ] && [ "$conf_port" = "$port" ] && [ "$have" = "$want" ]; then
  printf 'RUNBOOKS_RESULT {"script":"%s","changed":false,"before":%s,"after":%s,"unit":%s,"scheduled":false,"restart_at":null}\n' \
    "$SCRIPT_ID" "$(json_str "$before")" "$(json_str "$after")" "$(json_str "$unit")"
  exit 0
fi
if ! command -v systemd-run >/dev/null 2>&1 && ! { command -v setsid >/dev/null 2>&1 && command -v nohup >/dev/null 2>&1; }; then
  fail cannot-detach 5 "neither systemd-run nor setsid/nohup is available to restart $unit.service detached"
fi

if [ "$conf_host" != "$host" ]; then set_conf 'HttpProxy\.Host' HttpProxy.Host "$host"; fi
if [ "$conf_port" != "$port" ]; then set_conf 'HttpProxy\.Port' HttpProxy.Port "$port"; fi
if [ "$have" != "$want" ]; then
  mkdir -p "$dropin_dir" && printf '%s\n' "$want" > "$dropin_dir/$DROPIN" ||
    echo "could not write $dropin_dir/$DROPIN" >&2
fi

if ! how=$(schedule_detached "$AGENT_JOB" "$unit"); then
  echo "the proxy is written but $unit.service could not be restarted detached; restart it to apply" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"cannot-detach","changed":true,"before":%s,"after":%s,"unit":%s,"scheduled":false}\n' \
    "$SCRIPT_ID" "$(json_str "$before")" "$(json_str "$after")" "$(json_str "$unit")"
  exit 5
fi

printf 'RUNBOOKS_RESULT {"script":"%s","changed":true,"before":%s,"after":%s,"unit":%s,"scheduled":true,"how":"%s","delay":%s,"restart_at":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$before")" "$(json_str "$after")" "$(json_str "$unit")" "$how" "$RESTART_DELAY" \
  "$(json_str "$(restart_at)")"
exit 0
