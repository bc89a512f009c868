# runbooks-script: windows-proxy-set
# Sets the HTTP proxy the guest agent and the backup extension use to -Proxy, the one Run Command parameter (a
# param() argument, never part of this text), re-validated here: exactly http://<IPv4 or hostname>:<port>,
# anything else is refused (bad-proxy, exit 2, nothing changed). It sets WinHTTP's machine-wide proxy with
# `netsh winhttp set proxy` (Azure Backup, MicrosoftDocs/azure-docs articles/backup/backup-azure-vms-prepare.md)
# and the LocalSystem account's ProxyEnable/ProxyServer under HKEY_USERS\S-1-5-18\Software\Microsoft\Windows\
# CurrentVersion\Internet Settings (backup-azure-arm-vms-prepare.md "For Windows machines"), both bypassing
# 168.63.129.16 (the SAP deployment guide's "Configure the proxy": the agent talks to the host directly) and
# 169.254.169.254. It reads, compares and writes only what differs; when something changed it restarts both agent
# services detached, exactly as windows-agent-restart does (a one-shot SYSTEM scheduled task).
param([string]$Proxy)
$ErrorActionPreference = 'Stop'
$id = 'windows-proxy-set'
$delay = 10
$task = 'runbooks-agent-restart'
# The detached job: the scheduled task's fixed command line.
$job = '-NoProfile -NonInteractive -Command "Restart-Service -Name RdAgent, WindowsAzureGuestAgent -Force"'
$connections = 'SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\Connections'
$system = 'S-1-5-18\Software\Microsoft\Windows\CurrentVersion\Internet Settings'
$bypassList = '<local>;168.63.129.16;169.254.169.254'

# Exactly http://<IPv4 or hostname>:<1-65535>, case-sensitive, nothing before or after (\z: no trailing newline).
$octet = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
$label = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
$pattern = '\Ahttp://(?<host>' + $octet + '(?:\.' + $octet + '){3}|' + $label + '(?:\.' + $label + ')*)' +
           ':(?<port>[1-9][0-9]{0,4})\z'
$ok = $false
if ($null -ne $Proxy -and $Proxy -cmatch $pattern) {
    $h = $Matches['host']
    $p = [int]$Matches['port']
    $ok = $p -le 65535 -and $h.Length -le 253 -and
          ($h -cmatch ('\A' + $octet + '(?:\.' + $octet + '){3}\z') -or $h -cnotmatch '(?:\A|\.)[0-9]+\z')
}
if (-not $ok) {
    $err = [ordered]@{ script = $id; error = 'bad-proxy'; changed = $false; scheduled = $false }
    Write-Output 'Proxy must be exactly http://<IPv4 or hostname>:<port>; nothing was changed'
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 2
}
$hostport = "${h}:$p"
$after = "http://$hostport"
try {
    $missing = @(@('RdAgent', 'WindowsAzureGuestAgent') |
                 Where-Object { $null -eq (Get-Service -Name $_ -ErrorAction SilentlyContinue) })
    if ($missing.Count -gt 0) {
        $err = [ordered]@{ script = $id; error = 'no-agent-service'; missing = $missing; changed = $false
                           scheduled = $false }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    # WinHTTP now: the proxy string of WinHttpSettings when its flags say a proxy is set (see windows-proxy-get).
    $winhttp = $null
    $hklm = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $conn = $hklm.OpenSubKey($connections)
    $raw = if ($null -ne $conn) { $conn.GetValue('WinHttpSettings', $null) } else { $null }
    if ($raw -is [byte[]] -and $raw.Length -ge 16) {
        $length = [BitConverter]::ToInt32($raw, 12)
        if (([BitConverter]::ToInt32($raw, 8) -band 2) -and $length -gt 0 -and $raw.Length -ge 16 + $length) {
            $winhttp = [Text.Encoding]::ASCII.GetString($raw, 16, $length)
        }
    }
    $key = [Microsoft.Win32.Registry]::Users.CreateSubKey($system)
    $enable = $key.GetValue('ProxyEnable', $null)
    $server = $key.GetValue('ProxyServer', $null)
    $before = if ($null -ne $winhttp) { 'http://' + ($winhttp -replace '^[A-Za-z]+://', '') } else { $null }

    $changed = $false
    if ($winhttp -cne $hostport) {
        & netsh.exe winhttp set proxy $hostport $bypassList | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "netsh winhttp set proxy exited with $LASTEXITCODE" }
        $changed = $true
    }
    if ($enable -ne 1 -or $server -cne $hostport) {
        $key.SetValue('ProxyServer', $hostport, [Microsoft.Win32.RegistryValueKind]::String)
        $key.SetValue('ProxyOverride', $bypassList, [Microsoft.Win32.RegistryValueKind]::String)
        $key.SetValue('ProxyEnable', 1, [Microsoft.Win32.RegistryValueKind]::DWord)
        $changed = $true
    }
    $key.Close()
    if (-not $changed) {
        $result = [ordered]@{ script = $id; changed = $false; before = $before; after = $after; scheduled = $false
                              restart_at = $null }
        Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
        exit 0
    }
    $at = (Get-Date).AddSeconds($delay)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $job
    $trigger = New-ScheduledTaskTrigger -Once -At $at
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    Register-ScheduledTask -TaskName $task -Action $action -Trigger $trigger -Principal $principal -Force | Out-Null
    $result = [ordered]@{ script = $id; changed = $true; before = $before; after = $after; scheduled = $true
                          how = 'scheduled-task'; task = $task; delay = $delay
                          restart_at = $at.ToUniversalTime().ToString('o') }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'set-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
