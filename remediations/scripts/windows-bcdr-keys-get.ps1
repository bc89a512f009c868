# runbooks-script: windows-bcdr-keys-get
# Reads the backup extension's host-snapshot switches under HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys
# (SnapshotMethod, CalculateSnapshotTimeFromHost) in the 64-bit registry view (a 32-bit host would otherwise
# read WOW6432Node). Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-bcdr-keys-get'
$path = 'SOFTWARE\Microsoft\BcdrAgentPersistentKeys'
$names = @('SnapshotMethod', 'CalculateSnapshotTimeFromHost')
$kinds = @{ String = 'REG_SZ'; ExpandString = 'REG_EXPAND_SZ'; MultiString = 'REG_MULTI_SZ'
            DWord = 'REG_DWORD'; QWord = 'REG_QWORD'; Binary = 'REG_BINARY' }
try {
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $values = [ordered]@{}
    foreach ($name in $names) { $values[$name] = [ordered]@{ value = $null; type = $null } }
    $key = $hive.OpenSubKey($path)
    $exists = $null -ne $key
    if ($exists) {
        foreach ($name in $names) {
            $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            if ($null -ne $value) {
                $values[$name].value = [string]$value
                $values[$name].type = $kinds[$key.GetValueKind($name).ToString()]
            }
        }
        $key.Close()
    }
    $hive.Close()
    $result = [ordered]@{ script = $id; key = 'HKLM\' + $path; exists = $exists; values = $values; view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
