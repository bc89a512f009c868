# runbooks-script: windows-vss-set
# Sets HKLM\SOFTWARE\Microsoft\BcdrAgent\USEVSSCOPYBACKUP to REG_SZ "TRUE" in the 64-bit registry view (a
# 32-bit host would otherwise write WOW6432Node, which the backup extension does not read), so Azure Backup
# takes a VSS copy backup and leaves other backup tools' log chains alone. Writes only when not already so.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-set'
$path = 'SOFTWARE\Microsoft\BcdrAgent'
$name = 'USEVSSCOPYBACKUP'
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
    if ($before -cne 'TRUE' -or $kind -ne 'String') {
        $key.SetValue($name, 'TRUE', [Microsoft.Win32.RegistryValueKind]::String)
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
