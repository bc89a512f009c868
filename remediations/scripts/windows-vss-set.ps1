# runbooks-script: windows-vss-set
# Sets HKLM:\SOFTWARE\Microsoft\BcdrAgent\USEVSSCOPYBACKUP to REG_SZ "TRUE" (Azure Backup uses a VSS
# copy backup, leaving other backup tools' log chains alone). Writes only when it is not already so.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-set'
$key = 'HKLM:\SOFTWARE\Microsoft\BcdrAgent'
$name = 'USEVSSCOPYBACKUP'
try {
    $before = $null
    $kind = $null
    $prop = Get-ItemProperty -LiteralPath $key -Name $name -ErrorAction SilentlyContinue
    if ($null -ne $prop) {
        $before = [string]$prop.$name
        $kind = (Get-Item -LiteralPath $key).GetValueKind($name).ToString()
    }
    if ($before -cne 'TRUE' -or $kind -ne 'String') {
        # New-Item -Force would wipe an existing key's values, so only create a missing key.
        if (-not (Test-Path -LiteralPath $key)) { New-Item -Path $key | Out-Null }
        New-ItemProperty -LiteralPath $key -Name $name -Value 'TRUE' -PropertyType String -Force | Out-Null
    }
    $value = [string](Get-ItemProperty -LiteralPath $key -Name $name).$name
    $result = [ordered]@{ script = $id; before = $before; value = $value; type = 'REG_SZ' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress))
} catch {
    $err = [ordered]@{ script = $id; error = 'registry-write-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
