# runbooks-script: windows-provider-enable
# Sets the Azure Backup provider service iaasvmprovider to start automatically and starts it if it is not running.
$ErrorActionPreference = 'Stop'
$id = 'windows-provider-enable'
$service = 'iaasvmprovider'
try {
    $svc = Get-Service -Name $service -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        $err = [ordered]@{ script = $id; error = 'no-provider-service'; service = $service }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    $before = $svc.StartType.ToString()
    if ($before -ne 'Automatic') { Set-Service -Name $service -StartupType Automatic }
    if ((Get-Service -Name $service).Status -ne 'Running') { Start-Service -Name $service -WarningAction SilentlyContinue }
    $svc = Get-Service -Name $service
    $result = [ordered]@{ script = $id; service = $service; before = $before
                          start_type = $svc.StartType.ToString(); status = $svc.Status.ToString() }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'enable-failed'; service = $service; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
