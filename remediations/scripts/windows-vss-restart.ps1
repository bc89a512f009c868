# runbooks-script: windows-vss-restart
# Restarts the Volume Shadow Copy service (VSS), as the guide says for ExtensionFailedVssServiceInBadState
# ("net stop VSS", "net start VSS": Troubleshoot backup failures on Azure VMs). A VSS that does not stop within
# 30 s (hung in StopPending) is ended by its process id (VSS runs in its own process, vssvc.exe), then started and
# waited for Running. A Disabled VSS is refused (service-disabled, exit 3, nothing changed): the start type is the
# owner's choice. Then it checks that the service answers `vssadmin list writers`.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-restart'
try {
    $svc = Get-Service -Name 'VSS'
    $before = $svc.Status.ToString()
    $startType = $svc.StartType.ToString()
    if ($startType -eq 'Disabled') {
        $err = [ordered]@{ script = $id; error = 'service-disabled'; service = 'VSS'; before = $before }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    $killed = $false
    if ($svc.Status -ne 'Stopped') {
        Stop-Service -Name 'VSS' -Force -NoWait
        try {
            $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
        } catch {
            $vssPid = (Get-CimInstance -ClassName Win32_Service -Filter "Name='VSS'").ProcessId
            if ($vssPid -gt 0) {
                Stop-Process -Id $vssPid -Force
                $killed = $true
            }
            (Get-Service -Name 'VSS').WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
        }
    }
    Start-Service -Name 'VSS'
    $svc = Get-Service -Name 'VSS'
    $svc.WaitForStatus('Running', [TimeSpan]::FromSeconds(60))
    & vssadmin.exe list writers 2>&1 | Out-Null
    $answers = $LASTEXITCODE -eq 0
    $result = [ordered]@{ script = $id; service = 'VSS'; before = $before
                          status = (Get-Service -Name 'VSS').Status.ToString(); start_type = $startType
                          killed = $killed; answers = $answers }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'restart-failed'; service = 'VSS'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
