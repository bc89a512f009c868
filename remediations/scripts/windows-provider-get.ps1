# runbooks-script: windows-provider-get
# Reports whether the Azure Backup provider service iaasvmprovider exists, its start type and status. Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-provider-get'
$service = 'iaasvmprovider'
try {
    $result = [ordered]@{ script = $id; service = $service; exists = $false; start_type = $null; status = $null }
    $svc = Get-Service -Name $service -ErrorAction SilentlyContinue
    if ($null -ne $svc) {
        $result.exists = $true
        $result.start_type = $svc.StartType.ToString()
        $result.status = $svc.Status.ToString()
    }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'service-query-failed'; service = $service; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
