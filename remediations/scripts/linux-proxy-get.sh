#!/bin/bash
# runbooks-script: linux-proxy-get
# Reports the HTTP proxy the Azure Linux agent and the backup extension would use for HTTPS, every place it
# read (raw), and whether that proxy accepts a TCP connection from this guest (5 s timeout). Read-only.
# Sources: the agent prefers HttpProxy.Host/HttpProxy.Port in /etc/waagent.conf over the https_proxy (then
# HTTPS_PROXY) environment variable for HTTPS requests, and uses no proxy unless both a host and a port are known
# (Azure/WALinuxAgent azurelinuxagent/common/utils/restutil.py `_get_http_proxy`, `_http_request`); its
# environment comes from its systemd unit (WALinuxAgent README "HTTP Proxy": a drop-in
# /etc/systemd/system/walinuxagent.service.d/http-proxy.conf with Environment=) and it passes it to the
# extensions; the Linux backup extension reads HttpProxy.Host/Port from waagent.conf itself
# (Azure/azure-linux-extensions VMBackup/main/HttpUtil.py). Azure Backup's "Using an HTTP proxy for VM backups"
# (MicrosoftDocs/azure-docs articles/backup/backup-azure-arm-vms-prepare.md) sets both waagent.conf and
# http_proxy in /etc/environment; /etc/environment is reported but not used: systemd services do not read it.
set -u
SCRIPT_ID=linux-proxy-get
SYSTEMD_DIR=${RUNBOOKS_SYSTEMD_DIR:-/etc/systemd/system}
ETC_ENVIRONMENT=${RUNBOOKS_ETC_ENVIRONMENT:-/etc/environment}

# @lib

# waagent.conf value of $1 (escaped key), empty when absent, unreadable or the agent's "None".
conf_proxy_value() {
  [ -r "$WAAGENT_CONF" ] || return 0
  cpv=$(conf_value "$1")
  [ "$cpv" = None ] || printf '%s' "$cpv"
}

# The value of variable $1 in the space-separated NAME=VALUE list $2 (systemctl show -p Environment).
env_value() {
  set -f  # no globbing of the values
  for ev_pair in $2; do
    case "$ev_pair" in "$1="*) printf '%s' "${ev_pair#"$1="}" | tr -d '"' ;; esac
  done
  set +f
}

# The value of $1=... in /etc/environment (quotes removed); parsed, never sourced.
etc_env_value() {
  [ -r "$ETC_ENVIRONMENT" ] || return 0
  sed -n "s/^[[:space:]]*\(export[[:space:]]*\)\{0,1\}$1=//p" "$ETC_ENVIRONMENT" | tail -n 1 | tr -d "\"'"
}

conf_host=$(conf_proxy_value 'HttpProxy\.Host')
conf_port=$(conf_proxy_value 'HttpProxy\.Port')
unit=$(find_unit) || unit=
unit_env=
if [ -n "$unit" ]; then
  unit_env=$(systemctl show -p Environment "$unit.service" 2>/dev/null | sed -n 's/^Environment=//p')
fi
env_https=$(env_value https_proxy "$unit_env")
env_https_upper=$(env_value HTTPS_PROXY "$unit_env")
env_http=$(env_value http_proxy "$unit_env")
env_http_upper=$(env_value HTTP_PROXY "$unit_env")
etc_http=$(etc_env_value http_proxy)
etc_https=$(etc_env_value https_proxy)

proxy= source= host= port= detail=
if [ -n "$conf_host" ]; then
  source=waagent.conf host=$conf_host port=$conf_port
  [ -n "$port" ] || detail="HttpProxy.Host without HttpProxy.Port: the agent connects directly"
else
  url=${env_https:-$env_https_upper}
  if [ -n "$url" ]; then
    source=environment
    hp=${url#*://}; hp=${hp%%/*}; hp=${hp##*@}
    case "$hp" in
      *:*) host=${hp%:*} port=${hp##*:} ;;
      *) host=$hp port= detail="$url has no port: the agent connects directly" ;;
    esac
  fi
fi
case "$port" in *[!0-9]*) detail="HttpProxy port $port is not a number: the agent connects directly"; port= ;; esac

reachable=null
if [ -n "$host" ] && [ -n "$port" ]; then
  proxy="http://$host:$port"
  if ! command -v timeout >/dev/null 2>&1 || ! command -v bash >/dev/null 2>&1; then
    detail="cannot test $host:$port: timeout or bash is missing"
  else
    # bash opens the TCP connection; host and port are its arguments, never part of the command text.
    err=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq 0 ]; then
      reachable=true detail="connect to $host:$port: ok"
    elif [ "$rc" -eq 124 ]; then
      reachable=false detail="connect to $host:$port: timed out after 5 s"
    else
      case "$err" in
        *refused*) reachable=false detail="connect to $host:$port: refused" ;;
        *) reachable=false detail="connect to $host:$port: $(printf '%s' "$err" | tail -n 1 | sed 's/^.*: //')" ;;
      esac
    fi
  fi
fi

settings=$(printf '{"waagent.conf":{"HttpProxy.Host":%s,"HttpProxy.Port":%s},"unit":%s,' \
  "$(json_str "$conf_host")" "$(json_str "$conf_port")" "$(json_str "$unit")")
settings=$settings$(printf '"unit_environment":{"https_proxy":%s,"HTTPS_PROXY":%s,"http_proxy":%s,"HTTP_PROXY":%s},' \
  "$(json_str "$env_https")" "$(json_str "$env_https_upper")" "$(json_str "$env_http")" "$(json_str "$env_http_upper")")
settings=$settings$(printf '"/etc/environment":{"http_proxy":%s,"https_proxy":%s' \
  "$(json_str "$etc_http")" "$(json_str "$etc_https")")
settings="$settings}"'}'  # close /etc/environment, then settings
printf 'RUNBOOKS_RESULT {"script":"%s","proxy":%s,"source":%s,"settings":%s,"reachable":%s,"detail":%s}\n' \
  "$SCRIPT_ID" "$(json_str "$proxy")" "$(json_str "$source")" "$settings" "$reachable" "$(json_str "$detail")"
exit 0
