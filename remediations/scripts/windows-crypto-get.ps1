# runbooks-script: windows-crypto-get
# Reads SchUseStrongCrypto under each .NET Framework key (v4.0.30319 and v2.0.50727, native and WOW6432Node)
# in the 64-bit registry view, and whether SCHANNEL's TLS 1.0 and TLS 1.1 client protocols are disabled.
# Without strong crypto a .NET process may offer only those protocols: the backup extension then fails with
# ExtensionSnapshotFailedNoSecureNetwork (backup-azure-vms-troubleshoot.md). Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-crypto-get'
$name = 'SchUseStrongCrypto'
$paths = @('SOFTWARE\Microsoft\.NETFramework\v4.0.30319', 'SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v4.0.30319',
           'SOFTWARE\Microsoft\.NETFramework\v2.0.50727', 'SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v2.0.50727')
$schannel = 'SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols'
$kinds = @{ String = 'REG_SZ'; ExpandString = 'REG_EXPAND_SZ'; MultiString = 'REG_MULTI_SZ'
            DWord = 'REG_DWORD'; QWord = 'REG_QWORD'; Binary = 'REG_BINARY' }
try {
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $keys = @()
    foreach ($path in $paths) {
        $entry = [ordered]@{ key = 'HKLM\' + $path; exists = $false; value = $null; type = $null }
        $key = $hive.OpenSubKey($path)
        if ($null -ne $key) {
            $entry.exists = $true
            $value = $key.GetValue($name, $null)
            if ($null -ne $value) {
                $entry.value = [string]$value
                $entry.type = $kinds[$key.GetValueKind($name).ToString()]
            }
            $key.Close()
        }
        $keys += $entry
    }
    $tls = [ordered]@{}
    foreach ($protocol in @('TLS 1.0', 'TLS 1.1', 'TLS 1.2')) {
        $state = [ordered]@{ Enabled = $null; DisabledByDefault = $null }
        $key = $hive.OpenSubKey($schannel + '\' + $protocol + '\Client')
        if ($null -ne $key) {
            foreach ($v in @('Enabled', 'DisabledByDefault')) {
                $got = $key.GetValue($v, $null)
                if ($null -ne $got) { $state[$v] = [int64]$got }
            }
            $key.Close()
        }
        $tls[$protocol] = $state
    }
    $hive.Close()
    $legacyOff = ($tls['TLS 1.0'].Enabled -eq 0) -and ($tls['TLS 1.1'].Enabled -eq 0)
    $result = [ordered]@{ script = $id; keys = $keys; tls = $tls; legacy_tls_disabled = $legacyOff
                          view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
