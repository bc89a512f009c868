# runbooks-script: windows-vss-get
# Reads the Azure Backup VSS switch HKLM\SOFTWARE\Microsoft\BcdrAgent\USEVSSCOPYBACKUP in the 64-bit registry
# view (a 32-bit host would otherwise read WOW6432Node), and whether SQL Server is installed (a MSSQLSERVER
# or MSSQL$<instance> service). Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-get'
$path = 'SOFTWARE\Microsoft\BcdrAgent'
$name = 'USEVSSCOPYBACKUP'
$kinds = @{ String = 'REG_SZ'; ExpandString = 'REG_EXPAND_SZ'; MultiString = 'REG_MULTI_SZ'
            DWord = 'REG_DWORD'; QWord = 'REG_QWORD'; Binary = 'REG_BINARY' }
try {
    $sql = @(Get-Service -Name 'MSSQLSERVER', 'MSSQL$*' -ErrorAction SilentlyContinue).Count -gt 0
    $result = [ordered]@{ script = $id; exists = $false; value = $null; type = $null; sql_server = $sql
                          view = 'Registry64' }
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $key = $hive.OpenSubKey($path)
    if ($null -ne $key) {
        $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -ne $value) {
            $result.exists = $true
            $result.value = [string]$value
            $result.type = $kinds[$key.GetValueKind($name).ToString()]
        }
        $key.Close()
    }
    $hive.Close()
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
