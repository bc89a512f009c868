# runbooks-script: windows-crypto-set
# Sets SchUseStrongCrypto = 1 (REG_DWORD) under each .NET Framework key present (v4.0.30319 and v2.0.50727,
# native and WOW6432Node), in the 64-bit registry view, as backup-azure-vms-troubleshoot.md gives for
# ExtensionSnapshotFailedNoSecureNetwork ("for each .NET Framework present ... SchUseStrongCrypto=dword:00000001").
# Keys that are absent are not created; the native v4.0.30319 key must exist (.NET Framework 4). Writes only
# values that are not already DWORD 1. Nothing is restarted: a .NET process reads the value when it starts.
$ErrorActionPreference = 'Stop'
$id = 'windows-crypto-set'
$name = 'SchUseStrongCrypto'
$paths = @('SOFTWARE\Microsoft\.NETFramework\v4.0.30319', 'SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v4.0.30319',
           'SOFTWARE\Microsoft\.NETFramework\v2.0.50727', 'SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v2.0.50727')
try {
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $probe = $hive.OpenSubKey($paths[0])
    if ($null -eq $probe) {
        $hive.Close()
        $err = [ordered]@{ script = $id; error = 'no-dotnet4'; key = 'HKLM\' + $paths[0] }
        Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
        exit 3
    }
    $probe.Close()
    $keys = @()
    $changed = @()
    foreach ($path in $paths) {
        $key = $hive.OpenSubKey($path, $true)
        if ($null -ne $key) {
            $before = $key.GetValue($name, $null)
            $kind = if ($null -ne $before) { $key.GetValueKind($name).ToString() } else { $null }
            if ($kind -ne 'DWord' -or [int64]$before -ne 1) {
                $key.SetValue($name, 1, [Microsoft.Win32.RegistryValueKind]::DWord)
                $changed += 'HKLM\' + $path
            }
            $after = $key.GetValue($name)
            $key.Close()
            $was = if ($null -ne $before) { [string]$before } else { $null }
            $keys += [ordered]@{ key = 'HKLM\' + $path; before = $was; value = [string]$after; type = 'REG_DWORD' }
        }
    }
    $hive.Close()
    $result = [ordered]@{ script = $id; keys = $keys; changed = $changed; view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-write-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
