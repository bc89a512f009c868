# runbooks-script: windows-com-get
# Reads the two services the backup extension needs for COM+ (backup-azure-vms-troubleshoot.md,
# ExtensionSnapshotFailedCOM / ExtensionInstallationFailedCOM / ExtensionInstallationFailedMDTC): COM+ System
# Application (COMSysApp) and Distributed Transaction Coordinator (MSDTC), which must run as NT AUTHORITY\
# NetworkService. For each: whether it exists, its start type, status and logon account. Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-com-get'
try {
    $services = [ordered]@{}
    foreach ($name in @('COMSysApp', 'MSDTC')) {
        $entry = [ordered]@{ exists = $false; start_type = $null; status = $null; account = $null }
        $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($null -ne $svc) {
            $cim = Get-CimInstance -ClassName Win32_Service -Filter ("Name='" + $name + "'")
            $entry.exists = $true
            $entry.start_type = $svc.StartType.ToString()
            $entry.status = $svc.Status.ToString()
            $entry.account = [string]$cim.StartName
        }
        $services[$name] = $entry
    }
    $result = [ordered]@{ script = $id; services = $services }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'service-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
