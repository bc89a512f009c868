# runbooks-script: windows-vss-writers-restart
# Restarts the Windows services that host the VSS writers named in -Writers, the one Run Command parameter (a
# param() argument, never part of this text): writer names separated by |, each one a name of the table below
# (exact, case-sensitive), else nothing is restarted (bad-writer, exit 2). Each service is restarted once, the VSS
# service last, as the guide says for every writer not [1] Stable ("net stop serviceName", "net start
# serviceName": Troubleshoot backup failures on Azure VMs, ExtensionFailedVssWriterInBadState). Restart-Service
# -Force also restarts the services that depend on it. The agent's own services are never in the table. Then it
# lists the writers again (vssadmin list writers) so the caller sees their states after the restart.
param([string]$Writers)
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-writers-restart'
$services = @{
    'System Writer' = 'CryptSvc'; 'SqlServerWriter' = 'SQLWriter'; 'WMI Writer' = 'Winmgmt'
    'Registry Writer' = 'VSS'; 'COM+ REGDB Writer' = 'VSS'; 'Shadow Copy Optimization Writer' = 'VSS'
    'ASR Writer' = 'VSS'; 'BITS Writer' = 'BITS'; 'IIS Config Writer' = 'AppHostSvc'
    'IIS Metabase Writer' = 'IISADMIN'; 'DFS Replication service writer' = 'DFSR'; 'Dhcp Jet Writer' = 'DHCPServer'
    'Certificate Authority' = 'CertSvc'; 'FSRM Writer' = 'srmsvc'; 'MSSearch Service Writer' = 'WSearch'
    'NPS VSS Writer' = 'IAS'; 'WINS Jet Writer' = 'WINS'; 'FRS Writer' = 'NtFrs'
}
$known = @($services.Keys)
$names = @()
$unknown = @()
if ($null -ne $Writers) {
    foreach ($n in ($Writers -split '\|')) {
        if ($n.Length -gt 0 -and $known -ccontains $n) { $names += $n } elseif ($n.Length -gt 0) { $unknown += $n }
    }
}
if ($names.Count -eq 0 -or $unknown.Count -gt 0) {
    $err = [ordered]@{ script = $id; error = 'bad-writer'; unknown = $unknown; restarted = @() }
    Write-Output 'Writers must name known VSS writers, separated by |; nothing was restarted'
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 2
}
try {
    $order = @($names | ForEach-Object { $services[$_] } | Select-Object -Unique |
               Sort-Object -Property @{ Expression = { $_ -eq 'VSS' } })
    $restarted = @()
    foreach ($s in $order) {
        $svc = Get-Service -Name $s
        $before = $svc.Status.ToString()
        Restart-Service -Name $s -Force -WarningAction SilentlyContinue
        $svc = Get-Service -Name $s
        $svc.WaitForStatus('Running', [TimeSpan]::FromSeconds(60))
        $restarted += [ordered]@{ service = $s; writers = @($names | Where-Object { $services[$_] -eq $s })
                                  before = $before; status = (Get-Service -Name $s).Status.ToString() }
    }
    $after = @()
    $current = $null
    foreach ($line in @(& vssadmin.exe list writers 2>&1 | ForEach-Object { [string]$_ })) {
        if ($line -match "^\s*Writer name:\s*'(.*)'\s*$") {
            $current = [ordered]@{ name = $Matches[1]; state = $null; last_error = $null; service = $null }
            if ($services.ContainsKey($current.name)) { $current.service = $services[$current.name] }
            $after += $current
        } elseif ($null -ne $current -and $line -match '^\s*State:\s*(.*?)\s*$') {
            $current.state = $Matches[1]
        } elseif ($null -ne $current -and $line -match '^\s*Last error:\s*(.*?)\s*$') {
            $current.last_error = $Matches[1]
        }
    }
    $result = [ordered]@{ script = $id; restarted = $restarted; writers = $after }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'restart-failed'; restarted = $restarted; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress -Depth 5))
    exit 1
}
