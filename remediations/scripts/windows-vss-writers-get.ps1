# runbooks-script: windows-vss-writers-get
# Lists the VSS writers as `vssadmin list writers` shows them (name, state, last error), each with the Windows
# service that hosts it (the table below, as windows-vss-writers-restart has it; null for a writer not in it),
# the VSS service's status and start type, and HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys
# SnapshotWithoutThreads read in the 64-bit registry view (a 32-bit host would otherwise read WOW6432Node).
# vssadmin's labels ("Writer name:", "State:", "Last error:") are read in English (unparsed: true when it said
# something but no writer could be read); when vssadmin fails (the VSS service in a bad state) writers is empty and
# writers_error carries its error line. Read-only.
$ErrorActionPreference = 'Stop'
$id = 'windows-vss-writers-get'
$path = 'SOFTWARE\Microsoft\BcdrAgentPersistentKeys'
$name = 'SnapshotWithoutThreads'
$kinds = @{ String = 'REG_SZ'; ExpandString = 'REG_EXPAND_SZ'; MultiString = 'REG_MULTI_SZ'
            DWord = 'REG_DWORD'; QWord = 'REG_QWORD'; Binary = 'REG_BINARY' }
# Writer -> the service that hosts it: System Writer runs in CryptSvc (In-Box VSS Writers, learn.microsoft.com);
# SqlServerWriter is the SQL Writer Service; the VSS service itself hosts the Registry, COM+ REGDB, Shadow Copy
# Optimization and ASR writers.
$services = @{
    'System Writer' = 'CryptSvc'; 'SqlServerWriter' = 'SQLWriter'; 'WMI Writer' = 'Winmgmt'
    'Registry Writer' = 'VSS'; 'COM+ REGDB Writer' = 'VSS'; 'Shadow Copy Optimization Writer' = 'VSS'
    'ASR Writer' = 'VSS'; 'BITS Writer' = 'BITS'; 'IIS Config Writer' = 'AppHostSvc'
    'IIS Metabase Writer' = 'IISADMIN'; 'DFS Replication service writer' = 'DFSR'; 'Dhcp Jet Writer' = 'DHCPServer'
    'Certificate Authority' = 'CertSvc'; 'FSRM Writer' = 'srmsvc'; 'MSSearch Service Writer' = 'WSearch'
    'NPS VSS Writer' = 'IAS'; 'WINS Jet Writer' = 'WINS'; 'FRS Writer' = 'NtFrs'
}
try {
    $svc = Get-Service -Name 'VSS'
    $vss = [ordered]@{ name = 'VSS'; status = $svc.Status.ToString(); start_type = $svc.StartType.ToString() }
    $lines = @(& vssadmin.exe list writers 2>&1 | ForEach-Object { [string]$_ })
    $code = $LASTEXITCODE
    $writers = @()
    $current = $null
    foreach ($line in $lines) {
        if ($line -match "^\s*Writer name:\s*'(.*)'\s*$") {
            $current = [ordered]@{ name = $Matches[1]; state = $null; last_error = $null; service = $null }
            if ($services.ContainsKey($current.name)) { $current.service = $services[$current.name] }
            $writers += $current
        } elseif ($null -ne $current -and $line -match '^\s*State:\s*(.*?)\s*$') {
            $current.state = $Matches[1]
        } elseif ($null -ne $current -and $line -match '^\s*Last error:\s*(.*?)\s*$') {
            $current.last_error = $Matches[1]
        }
    }
    $writersError = $null
    if ($code -ne 0) {
        $said = @($lines | Where-Object { $_ -match '^\s*Error' })
        $writersError = if ($said.Count -gt 0) { $said[0].Trim() } else { "vssadmin exited with $code" }
        $writers = @()
    }
    $unparsed = $code -eq 0 -and $writers.Count -eq 0 -and $lines.Count -gt 0
    $threads = [ordered]@{ exists = $false; value = $null; type = $null }
    $hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $key = $hive.OpenSubKey($path)
    if ($null -ne $key) {
        $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -ne $value) {
            $threads.exists = $true
            $threads.value = [string]$value
            $threads.type = $kinds[$key.GetValueKind($name).ToString()]
        }
        $key.Close()
    }
    $hive.Close()
    $result = [ordered]@{ script = $id; vss = $vss; writers = $writers; writers_error = $writersError
                          unparsed = $unparsed; snapshot_without_threads = $threads; view = 'Registry64' }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 5))
} catch {
    $err = [ordered]@{ script = $id; error = 'vss-read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
