# runbooks-script: windows-com-start
# Starts COM+ System Application (COMSysApp) and Distributed Transaction Coordinator (MSDTC) when they are
# stopped ("net start COMSysApp", backup-azure-vms-troubleshoot.md); a Disabled one is set to Manual first, the
# start type both have on a default install. Never stops or restarts a running service and never changes an
# account: a service that runs stays as it is.
$ErrorActionPreference = 'Stop'
$id = 'windows-com-start'
try {
    $before = [ordered]@{}
    $started = @()
    # MSDTC first: COM+ talks to it.
    foreach ($name in @('MSDTC', 'COMSysApp')) {
        $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($null -eq $svc) {
            $err = [ordered]@{ script = $id; error = 'service-missing'; service = $name }
            Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
            exit 3
        }
        $before[$name] = [ordered]@{ start_type = $svc.StartType.ToString(); status = $svc.Status.ToString() }
        if ($svc.StartType.ToString() -eq 'Disabled') { Set-Service -Name $name -StartupType Manual }
        if ($svc.Status.ToString() -ne 'Running') {
            Start-Service -Name $name -WarningAction SilentlyContinue
            $started += $name
        }
    }
    $after = [ordered]@{}
    foreach ($name in @('COMSysApp', 'MSDTC')) {
        $svc = Get-Service -Name $name
        $after[$name] = [ordered]@{ start_type = $svc.StartType.ToString(); status = $svc.Status.ToString() }
    }
    $result = [ordered]@{ script = $id; before = $before; services = $after; started = $started }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'start-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
