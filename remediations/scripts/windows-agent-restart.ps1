# runbooks-script: windows-agent-restart
# Schedules a restart of both guest agent services, RdAgent and WindowsAzureGuestAgent (Microsoft's Windows
# guest agent troubleshooting restarts both), as a one-shot scheduled task running as SYSTEM a few seconds
# out, and returns at once. Run Command runs through that agent: restarting it inline leaves the Run Command
# Transitioning until it times out (run-command.md). The caller follows the instance view until the agent
# reports Ready with a status time after `restart_at`.
$ErrorActionPreference = 'Stop'
$id = 'windows-agent-restart'
$services = @('RdAgent', 'WindowsAzureGuestAgent')
$delay = 10
$task = 'runbooks-agent-restart'
# The detached job: the scheduled task's fixed command line.
$job = '-NoProfile -NonInteractive -Command "Restart-Service -Name RdAgent, WindowsAzureGuestAgent -Force"'
try {
    $missing = @($services | Where-Object { $null -eq (Get-Service -Name $_ -ErrorAction SilentlyContinue) })
    if ($missing.Count -gt 0) {
        $err = [ordered]@{ script = $id; error = 'no-agent-service'; services = $services; missing = $missing
                           scheduled = $false }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    $at = (Get-Date).AddSeconds($delay)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $job
    $trigger = New-ScheduledTaskTrigger -Once -At $at
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    Register-ScheduledTask -TaskName $task -Action $action -Trigger $trigger -Principal $principal -Force | Out-Null
    $result = [ordered]@{ script = $id; services = $services; scheduled = $true; how = 'scheduled-task'
                          task = $task; delay = $delay; restart_at = $at.ToUniversalTime().ToString('o') }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'schedule-failed'; services = $services; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
