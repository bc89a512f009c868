#!/bin/bash
# runbooks-script: linux-vmbackup-conf-set
# Adds the mount points of MOUNTS, the one Run Command parameter (an environment variable, never part of this text:
# comma-separated absolute mount points of A-Za-z0-9._@+/- only, not "/"; anything else is bad-mounts, exit 2,
# nothing changed), to MountsToSkip under [SnapshotThread] in /etc/azure/vmbackup.conf, so that the backup
# extension does not freeze them (backup-azure-vms-troubleshoot.md, UserErrorFsFreezeFailed). When the file is
# missing it is first copied from the extension's template (/var/lib/waagent/Microsoft.Azure.RecoveryServices.
# VMSnapshotLinux-<version>/main/tempPlugin/vmbackup.conf, the newest version; "[SnapshotThread]" alone without
# one). Every entry already there is kept (trimmed: the extension splits the value on "," without trimming,
# Azure/azure-linux-extensions VMBackup fsfreezer.py); a mount already listed is not added again, so a second run
# changes nothing. Two MountsToSkip lines in the section make the extension's ConfigParser reject the whole file;
# the script then refuses (duplicate-key, exit 4, nothing changed): a person must merge them.
set -u
SCRIPT_ID=linux-vmbackup-conf-set
VMBACKUP_CONF=${RUNBOOKS_VMBACKUP_CONF:-/etc/azure/vmbackup.conf}
WAAGENT_DIR=${RUNBOOKS_WAAGENT_DIR:-/var/lib/waagent}

# @lib

# Whether $1 is a comma-separated list of absolute mount points (A-Za-z0-9._@+/- only; not "/", no "." or ".."
# segment, no empty entry, no "//" or trailing "/"), at most 4096 characters.
valid_mounts() {
  case "$1" in ''|*[!A-Za-z0-9._@+/,-]*) return 1 ;; esac
  [ "${#1}" -le 4096 ] || return 1
  case ",$1," in *,,*|*,/,*) return 1 ;; esac
  case ",$1," in *,[!/]*|*/,*|*//*) return 1 ;; esac
  vm_ifs=$IFS; IFS=,
  for vm_m in $1; do
    case "$vm_m/" in */./*|*/../*) IFS=$vm_ifs; return 1 ;; esac
  done
  IFS=$vm_ifs
  return 0
}

fail() {  # $1 error, $2 exit code, $3 message; nothing has changed when this is called
  echo "$3" >&2
  printf 'RUNBOOKS_RESULT {"script":"%s","error":"%s","changed":false}\n' "$SCRIPT_ID" "$1"
  exit "$2"
}

# The extension's list (split on ",", untrimmed) of the [SnapshotThread] MountsToSkip of file $1, as a JSON array.
skip_json() {
  [ -f "$1" ] || { printf '[]'; return; }
  awk '
    /^[ \t]*\[[^]]*\][ \t]*$/ { h = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", h); inside = (h == "SnapshotThread" && !seen);
                                if (inside) seen = 1; next }
    inside && tolower($0) ~ /^[ \t]*mountstoskip[ \t]*[=:]/ && !n++ {
      v = $0; sub(/^[^=:]*[=:]/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v); print v }' "$1" |
    tr ',' '\n' | { sj_sep= sj_out='['; while IFS= read -r sj; do
      [ -n "$sj" ] && { sj_out="$sj_out$sj_sep$(json_str "$sj")"; sj_sep=,; }; done; printf '%s]' "$sj_out"; }
}

valid_mounts "${MOUNTS-}" || fail bad-mounts 2 \
  "MOUNTS must be comma-separated absolute mount points (A-Za-z0-9._@+/-, not /); nothing was changed"

created=false from_template=false
before=$(skip_json "$VMBACKUP_CONF")
work=$(mktemp) || fail write-failed 1 "cannot create a temporary file; nothing was changed"
trap 'rm -f "$work"' EXIT
if [ -f "$VMBACKUP_CONF" ]; then
  cat "$VMBACKUP_CONF" > "$work"
else
  created=true
  template=$(ls -d "$WAAGENT_DIR"/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/main/tempPlugin/vmbackup.conf \
    2>/dev/null | sort -V 2>/dev/null | tail -n 1)
  if [ -n "$template" ] && cat "$template" > "$work"; then from_template=true; else printf '[SnapshotThread]\n' > "$work"; fi
fi

# Rewrite: RB_ADD (the validated MOUNTS) is read from the environment, never from this text. Exit 4: two keys;
# the first line of output says whether anything changed.
new=$(RB_ADD=$MOUNTS awk '
  function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
  BEGIN { na = split(ENVIRON["RB_ADD"], add, ",") }
  { line[NR] = $0
    if ($0 ~ /^[ \t]*\[[^]]*\][ \t]*$/) { h = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", h)
      inside = (h == "SnapshotThread" && !hdr); if (inside) hdr = NR; next }
    if (inside && tolower($0) ~ /^[ \t]*mountstoskip[ \t]*[=:]/) { keys++; if (keys == 1) key = NR } }
  END {
    if (keys > 1) exit 4
    value = ""
    if (key) { value = line[key]; sub(/^[^=:]*[=:]/, "", value); value = trim(value) }
    nh = split(value, have, ","); kept = ""; nk = 0
    for (i = 1; i <= nh; i++) { e = trim(have[i]); if (e != "" && !(e in k)) { k[e] = 1; kept = kept (nk++ ? "," : "") e } }
    for (i = 1; i <= nh; i++) exact[have[i]] = 1
    missing = 0
    for (i = 1; i <= na; i++) if (!(add[i] in exact)) missing = 1
    after = kept
    for (i = 1; i <= na; i++) if (!(add[i] in k)) { k[add[i]] = 1; after = after (nk++ ? "," : "") add[i] }
    print (missing ? "changed" : "same")
    out = "MountsToSkip = " after
    for (i = 1; i <= NR; i++) {
      if (i == key && missing) print out; else print line[i]
      if (i == hdr && !key && missing) print out }
    if (!hdr && missing) { print "[SnapshotThread]"; print out } }' "$work")
rc=$?
[ "$rc" -eq 4 ] && fail duplicate-key 4 \
  "more than one MountsToSkip line in [SnapshotThread]: the extension ignores the whole file; merge them by hand"
[ "$rc" -eq 0 ] || fail write-failed 1 "could not read $VMBACKUP_CONF; nothing was changed"

state=${new%%
*}
if [ "$state" = same ] && [ "$created" = false ]; then
  printf 'RUNBOOKS_RESULT {"script":"%s","changed":false,"created":false,"before":%s,"after":%s}\n' \
    "$SCRIPT_ID" "$before" "$before"
  exit 0
fi
mkdir -p "$(dirname "$VMBACKUP_CONF")" &&
  printf '%s\n' "${new#*
}" > "$VMBACKUP_CONF" || fail write-failed 1 "could not write $VMBACKUP_CONF"
printf 'RUNBOOKS_RESULT {"script":"%s","changed":true,"created":%s,"from_template":%s,"before":%s,"after":%s}\n' \
  "$SCRIPT_ID" "$created" "$from_template" "$before" "$(skip_json "$VMBACKUP_CONF")"
exit 0
