# runbooks-script: windows-bcdr-keys-set
# Makes the backup extension take its snapshots through the host, as backup-azure-vms-troubleshoot.md gives for
# ExtensionFailedTimeoutVMNetworkUnresponsive: under HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys (64-bit
# registry view) SnapshotMethod = firstHostThenGuest and CalculateSnapshotTimeFromHost = True, both REG_SZ
# (REG ADD ... /t REG_SZ /f). Other values of the key stay; writes only what differs. Nothing is restarted.
$ErrorActionPreference = 'Stop'
$id = 'windows-bcdr-keys-set'
$path = 'SOFTWARE\Microsoft\BcdrAgentPersistentKeys'
$want = [ordered]@{ SnapshotMethod = 'firstHostThenGuest'; CalculateSnapshotTimeFromHost = 'True' }
try {
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    # CreateSubKey opens an existing key for writing (its other values stay) or creates a missing one.
    $key = $hive.CreateSubKey($path)
    $before = [ordered]@{}
    $after = [ordered]@{}
    $changed = @()
    foreach ($name in $want.Keys) {
        $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        $kind = if ($null -ne $value) { $key.GetValueKind($name).ToString() } else { $null }
        $before[$name] = $(if ($null -ne $value) { [string]$value } else { $null })
        if ($before[$name] -cne $want[$name] -or $kind -ne 'String') {
            $key.SetValue($name, $want[$name], [Microsoft.Win32.RegistryValueKind]::String)
            $changed += $name
        }
        $after[$name] = [string]$key.GetValue($name)
    }
    $key.Close()
    $hive.Close()
    $result = [ordered]@{ script = $id; key = 'HKLM\' + $path; before = $before; values = $after; type = 'REG_SZ'
                          changed = $changed; view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-write-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
