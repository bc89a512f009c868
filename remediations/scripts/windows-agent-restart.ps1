# runbooks-script: windows-agent-restart
# Restarts (or starts, if stopped) the Azure guest agent service WindowsAzureGuestAgent and reports its status.
$ErrorActionPreference = 'Stop'
$id = 'windows-agent-restart'
$service = 'WindowsAzureGuestAgent'
try {
    if ($null -eq (Get-Service -Name $service -ErrorAction SilentlyContinue)) {
        $err = [ordered]@{ script = $id; error = 'no-agent-service'; service = $service; status = $null }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    Restart-Service -Name $service -Force -WarningAction SilentlyContinue
    $status = (Get-Service -Name $service).Status.ToString()
    $result = [ordered]@{ script = $id; service = $service; status = $status }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'restart-failed'; service = $service; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
