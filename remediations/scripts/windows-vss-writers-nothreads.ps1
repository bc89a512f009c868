# runbooks-script: windows-vss-writers-nothreads
# Sets HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys\SnapshotWithoutThreads to REG_SZ "True" in the 64-bit
# registry view, so that the backup extension creates no threads for blob snapshots (the guide's step after
# restarting the VSS writers: REG ADD "HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys" /v SnapshotWithoutThreads
# /t REG_SZ /d True /f). Writes only when not already so; the key's other values stay.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-writers-nothreads'
$path = 'SOFTWARE\Microsoft\BcdrAgentPersistentKeys'
$name = 'SnapshotWithoutThreads'
try {
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    # CreateSubKey opens an existing key for writing (its other values stay) or creates a missing one.
    $key = $hive.CreateSubKey($path)
    $before = $null
    $kind = $null
    $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    if ($null -ne $value) {
        $before = [string]$value
        $kind = $key.GetValueKind($name).ToString()
    }
    if ($before -ne 'True' -or $kind -ne 'String') {
        $key.SetValue($name, 'True', [Microsoft.Win32.RegistryValueKind]::String)
    }
    $after = [string]$key.GetValue($name)
    $key.Close()
    $hive.Close()
    $result = [ordered]@{ script = $id; before = $before; value = $after; type = 'REG_SZ'; view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-write-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
