# runbooks-script: windows-vss-get
# Reads the Azure Backup VSS switch HKLM:\SOFTWARE\Microsoft\BcdrAgent\USEVSSCOPYBACKUP, and whether SQL Server
# is installed (a MSSQLSERVER or MSSQL$<instance> service). Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-get'
$key = 'HKLM:\SOFTWARE\Microsoft\BcdrAgent'
$name = 'USEVSSCOPYBACKUP'
$kinds = @{ String = 'REG_SZ'; ExpandString = 'REG_EXPAND_SZ'; MultiString = 'REG_MULTI_SZ'
            DWord = 'REG_DWORD'; QWord = 'REG_QWORD'; Binary = 'REG_BINARY' }
try {
    $sql = @(Get-Service -Name 'MSSQLSERVER', 'MSSQL$*' -ErrorAction SilentlyContinue).Count -gt 0
    $result = [ordered]@{ script = $id; exists = $false; value = $null; type = $null; sql_server = $sql }
    $prop = Get-ItemProperty -LiteralPath $key -Name $name -ErrorAction SilentlyContinue
    if ($null -ne $prop) {
        $result.exists = $true
        $result.value = [string]$prop.$name
        $result.type = $kinds[(Get-Item -LiteralPath $key).GetValueKind($name).ToString()]
    }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
