#!/bin/bash
# runbooks-script: linux-vmbackup-conf-get
# Reports what decides which file systems the Linux backup extension freezes, read-only: MountsToSkip of
# [SnapshotThread] in /etc/azure/vmbackup.conf (raw, and split on "," as the extension splits it), the
# extension's template, the mounted ext3/ext4/xfs/btrfs file systems and mount points listed more than once in
# /proc/mounts, and the mount points the extension's log says failed to freeze or thaw (still mounted).
# Sources (Azure/azure-linux-extensions VMBackup): Utils/HandlerUtil.py get_value_from_configfile (ConfigParser,
# section SnapshotThread, /etc/azure/vmbackup.conf); fsfreezer.py freeze_safe (MountsToSkip split on ",", not
# trimmed; ext3/ext4/xfs/btrfs frozen); safefreeze/src/safefreeze.c ("Failed to FIFREEZE: <mount>",
# "Failed to FITHAW: <mount>"); main/tempPlugin/vmbackup.conf, the template. The guide: backup-azure-vms-troubleshoot.md
# UserErrorFsFreezeFailed (find the failed mount points in the extension log; check for duplicate mounts).
set -u
SCRIPT_ID=linux-vmbackup-conf-get
VMBACKUP_CONF=${RUNBOOKS_VMBACKUP_CONF:-/etc/azure/vmbackup.conf}
WAAGENT_DIR=${RUNBOOKS_WAAGENT_DIR:-/var/lib/waagent}
EXT_LOG_DIR=${RUNBOOKS_EXT_LOG_DIR:-/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux}
PROC_MOUNTS=${RUNBOOKS_PROC_MOUNTS:-/proc/mounts}

# @lib

# JSON array of the lines of stdin (each a string).
json_lines() {
  jl_sep= jl_out='['
  while IFS= read -r jl_line; do
    jl_out="$jl_out$jl_sep$(json_str "$jl_line")"; jl_sep=,
  done
  printf '%s]' "$jl_out"
}

# "<count of MountsToSkip lines>|<sections>|<value of the first>" for [SnapshotThread] (the first such section).
scan_conf() {
  awk '
    /^[ \t]*\[[^]]*\][ \t]*$/ { h = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", h); inside = (h == "SnapshotThread" && !seen);
                                if (inside) seen = 1; next }
    inside && tolower($0) ~ /^[ \t]*mountstoskip[ \t]*[=:]/ {
      n++; if (n == 1) { v = $0; sub(/^[^=:]*[=:]/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v) } }
    END { printf "%d|%d|%s", n, seen, v }' "$VMBACKUP_CONF"
}

exists=false keys=0 section=false raw=
if [ -f "$VMBACKUP_CONF" ]; then
  exists=true
  scan=$(scan_conf)
  keys=${scan%%|*}; rest=${scan#*|}
  [ "${rest%%|*}" = 1 ] && section=true
  raw=${rest#*|}
fi
template=$(ls -d "$WAAGENT_DIR"/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/main/tempPlugin/vmbackup.conf \
  2>/dev/null | sort -V 2>/dev/null | tail -n 1)

# The extension's list: split on "," as fsfreezer.py does (no trimming).
skip='[]'
if [ -n "$raw" ]; then skip=$(printf '%s\n' "$raw" | tr ',' '\n' | json_lines); fi

# /proc/mounts: device, mount point (octal escapes kept), type.
mounts=$(awk '$3 ~ /^(ext3|ext4|xfs|btrfs)$/ && !s[$2]++ { print $2 }' "$PROC_MOUNTS" 2>/dev/null | json_lines)
duplicates=$(awk 'c[$2]++ == 1 { print $2 }' "$PROC_MOUNTS" 2>/dev/null | json_lines)

log=null failed='[]'
logs=$(ls "$EXT_LOG_DIR"/extension.log* 2>/dev/null)
if [ -n "$logs" ]; then
  log=$(json_str "$EXT_LOG_DIR/extension.log")
  # shellcheck disable=SC2086
  failed=$(grep -h -o -E 'Failed to (FIFREEZE|FITHAW): [^ ]+' $logs 2>/dev/null | sed 's/^Failed to [A-Z]*: //' |
    awk 'NR == FNR { m[$2] = 1; next } m[$0] && !s[$0]++' "$PROC_MOUNTS" - | json_lines)
fi

printf 'RUNBOOKS_RESULT {"script":"%s","conf":%s,"exists":%s,"template":%s,"section":%s,"keys":%s,"mounts_to_skip":%s,"skip":%s,"mounts":%s,"duplicates":%s,"failed":%s,"log":%s}\n' \
  "$SCRIPT_ID" "$(json_str "/etc/azure/vmbackup.conf")" "$exists" "$(json_str "$template")" "$section" "$keys" \
  "$(json_str "$raw")" "$skip" "$mounts" "$duplicates" "$failed" "$log"
exit 0
