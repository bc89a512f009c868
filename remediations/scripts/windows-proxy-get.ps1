# runbooks-script: windows-proxy-get
# Reports the HTTP proxy the guest agent and the backup extension would use, every place read (raw), and whether
# that proxy accepts a TCP connection from this guest (5 s timeout). Read-only. Places, in the order used:
# WinHTTP's machine-wide proxy (HKLM\...\Internet Settings\Connections WinHttpSettings, what `netsh winhttp set
# proxy` writes; Azure Backup's "Using an HTTP proxy for VM backups", MicrosoftDocs/azure-docs
# articles/backup/backup-azure-vms-prepare.md: "netsh winhttp set proxy http://<proxy IP>:<proxy port>"), then
# the LocalSystem account's proxy (HKEY_USERS\S-1-5-18\Software\Microsoft\Windows\CurrentVersion\Internet
# Settings ProxyEnable/ProxyServer: backup-azure-arm-vms-prepare.md "For Windows machines", psexec -i -s and its
# registry script; the SAP deployment guide's "Configure the proxy" sets it for Local System with the exception
# 168.63.129.16). That WinHTTP wins over LocalSystem's settings is assumed.
$ErrorActionPreference = 'Stop'
$id = 'windows-proxy-get'
$connections = 'SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\Connections'
$system = 'S-1-5-18\Software\Microsoft\Windows\CurrentVersion\Internet Settings'

# host:port of a proxy string ("h:p", "http://h:p", "http=h:p;https=h2:p2"): the https entry wins, else the first.
function Get-HostPort([string]$server) {
    if ([string]::IsNullOrWhiteSpace($server)) { return $null }
    $entries = @($server -split ';' | Where-Object { $_.Trim() -ne '' })
    $pick = @($entries | Where-Object { $_ -like 'https=*' })
    $entry = if ($pick.Count -gt 0) { $pick[0] } else { $entries[0] }
    $entry = ($entry -replace '^[A-Za-z]+=', '') -replace '^[A-Za-z]+://', ''
    return ($entry.Trim() -split '/')[0]
}

try {
    # WinHttpSettings: DWORD size, DWORD counter, DWORD flags (2 = a proxy), DWORD length, the proxy string,
    # DWORD length, the bypass list.
    $winhttp = $null
    $bypass = $null
    $hklm = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine,
                                                       [Microsoft.Win32.RegistryView]::Registry64)
    $conn = $hklm.OpenSubKey($connections)
    $raw = if ($null -ne $conn) { $conn.GetValue('WinHttpSettings', $null) } else { $null }
    if ($raw -is [byte[]] -and $raw.Length -ge 16) {
        $flags = [BitConverter]::ToInt32($raw, 8)
        $length = [BitConverter]::ToInt32($raw, 12)
        if (($flags -band 2) -and $length -gt 0 -and $raw.Length -ge 16 + $length) {
            $winhttp = [Text.Encoding]::ASCII.GetString($raw, 16, $length)
            $at = 16 + $length
            if ($raw.Length -ge $at + 4) {
                $blen = [BitConverter]::ToInt32($raw, $at)
                if ($blen -gt 0 -and $raw.Length -ge $at + 4 + $blen) { $bypass = [Text.Encoding]::ASCII.GetString($raw, $at + 4, $blen) }
            }
        }
    }
    $key = [Microsoft.Win32.Registry]::Users.OpenSubKey($system)
    $enable = if ($null -ne $key) { $key.GetValue('ProxyEnable', $null) } else { $null }
    $server = if ($null -ne $key) { $key.GetValue('ProxyServer', $null) } else { $null }
    $override = if ($null -ne $key) { $key.GetValue('ProxyOverride', $null) } else { $null }

    $source = $null
    $hostport = $null
    if ($null -ne $winhttp) {
        $source = 'winhttp'
        $hostport = Get-HostPort $winhttp
    } elseif ($enable -eq 1 -and -not [string]::IsNullOrWhiteSpace($server)) {
        $source = 'localsystem'
        $hostport = Get-HostPort $server
    }
    $proxy = $null
    $reachable = $null
    $detail = $null
    if ($null -ne $hostport) {
        $colon = $hostport.LastIndexOf(':')
        $h = if ($colon -gt 0) { $hostport.Substring(0, $colon) } else { $hostport }
        $p = if ($colon -gt 0) { $hostport.Substring($colon + 1) } else { '80' }
        $proxy = "http://${h}:$p"
        $client = New-Object System.Net.Sockets.TcpClient
        try {
            $task = $client.ConnectAsync($h, [int]$p)
            if ($task.Wait(5000)) {
                $reachable = $true
                $detail = "connect to ${h}:${p}: ok"
            } else {
                $reachable = $false
                $detail = "connect to ${h}:${p}: timed out after 5 s"
            }
        } catch {
            $reachable = $false
            $inner = $_.Exception
            while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
            $why = if ($inner -is [System.Net.Sockets.SocketException] -and
                       $inner.SocketErrorCode -eq [System.Net.Sockets.SocketError]::ConnectionRefused) { 'refused' }
                   else { $inner.Message }
            $detail = "connect to ${h}:${p}: $why"
        } finally {
            $client.Dispose()
        }
    }
    $settings = [ordered]@{
        winhttp = [ordered]@{ proxy = $winhttp; bypass = $bypass }
        localsystem = [ordered]@{ ProxyEnable = $enable; ProxyServer = $server; ProxyOverride = $override }
    }
    $result = [ordered]@{ script = $id; proxy = $proxy; source = $source; settings = $settings
                          reachable = $reachable; detail = $detail }
    Write-Output ('RUNBOOKS_RESULT ' + ($result | ConvertTo-Json -Compress -Depth 4))
} catch {
    $err = [ordered]@{ script = $id; error = 'read-failed'; message = $_.Exception.Message }
    Write-Output ('RUNBOOKS_RESULT ' + ($err | ConvertTo-Json -Compress))
    exit 1
}
