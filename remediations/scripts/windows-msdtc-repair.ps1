# runbooks-script: windows-msdtc-repair
# Makes MSDTC run as NT AUTHORITY\NetworkService, as backup-azure-vms-troubleshoot.md gives for
# ExtensionInstallationFailedMDTC: change the logon account (Win32_Service.Change), restart MSDTC, then restart
# COM+ System Application (COMSysApp). When MSDTC then does not start, the guide's fallback: stop it,
# msdtc -uninstall, msdtc -install (which registers it under NetworkService), start MSDTC and COMSysApp.
# DISRUPTIVE: restarting MSDTC aborts the distributed transactions in flight and restarting COM+ stops its
# applications; run it with consent, in a maintenance window. Does nothing when MSDTC already runs as
# NetworkService and both services run.
$ErrorActionPreference = 'Stop'
$id = 'windows-msdtc-repair'
$account = 'NT AUTHORITY\NetworkService'
function Get-Logon([string]$name) {
    return [string](Get-CimInstance -ClassName Win32_Service -Filter ("Name='" + $name + "'")).StartName
}
function Test-NetworkService([string]$who) {
    return ($who -replace '\s', '') -ieq 'NTAUTHORITY\NetworkService'
}
try {
    foreach ($name in @('MSDTC', 'COMSysApp')) {
        if ($null -eq (Get-Service -Name $name -ErrorAction SilentlyContinue)) {
            $err = [ordered]@{ script = $id; error = 'service-missing'; service = $name }
            Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
            exit 3
        }
    }
    $was = Get-Logon 'MSDTC'
    $before = [ordered]@{ account = $was; status = (Get-Service -Name 'MSDTC').Status.ToString()
                          comsysapp = (Get-Service -Name 'COMSysApp').Status.ToString() }
    $how = 'none'
    if (-not (Test-NetworkService $was)) {
        $how = 'change-account'
        $cim = Get-CimInstance -ClassName Win32_Service -Filter "Name='MSDTC'"
        $changed = Invoke-CimMethod -InputObject $cim -MethodName Change -Arguments @{ StartName = $account; StartPassword = '' }
        if ($changed.ReturnValue -ne 0) { $how = 'reinstall' }
        if ((Get-Service -Name 'MSDTC').StartType.ToString() -eq 'Disabled') { Set-Service -Name 'MSDTC' -StartupType Manual }
        if ($how -eq 'change-account') {
            try { Restart-Service -Name 'MSDTC' -Force -WarningAction SilentlyContinue } catch { $how = 'reinstall' }
        }
        if ($how -eq 'reinstall') {
            Stop-Service -Name 'MSDTC' -Force -ErrorAction SilentlyContinue
            & msdtc.exe -uninstall
            & msdtc.exe -install
            Start-Service -Name 'MSDTC' -WarningAction SilentlyContinue
        }
        Restart-Service -Name 'COMSysApp' -Force -WarningAction SilentlyContinue
    }
    if ((Get-Service -Name 'MSDTC').Status.ToString() -ne 'Running') { Start-Service -Name 'MSDTC' }
    if ((Get-Service -Name 'COMSysApp').StartType.ToString() -eq 'Disabled') {
        Set-Service -Name 'COMSysApp' -StartupType Manual
    }
    if ((Get-Service -Name 'COMSysApp').Status.ToString() -ne 'Running') { Start-Service -Name 'COMSysApp' }
    $now = Get-Logon 'MSDTC'
    if (-not (Test-NetworkService $now)) {
        $err = [ordered]@{ script = $id; error = 'account-unchanged'; account = $now; how = $how }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 4
    }
    $result = [ordered]@{ script = $id; before = $before; account = $now; how = $how
                          status = (Get-Service -Name 'MSDTC').Status.ToString()
                          comsysapp = (Get-Service -Name 'COMSysApp').Status.ToString() }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'repair-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
