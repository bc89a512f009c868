<#
.SYNOPSIS
    Relay runbook (PowerShell 7.2): start fix_backup_failure (Python 3.10) for an alert posted to this webhook.
.DESCRIPTION
    Azure does not start a Python runbook from a webhook ("Using a webhook to start a Python runbook isn't
    supported.", azure-docs articles/automation/automation-webhooks.md), so the action group calls this
    runbook's webhook and this runbook starts the Python job through the jobs API (PUT .../jobs/{jobName}).
    It decides nothing else: every check below is stated in runbooks/automation/relay.py (relay_request), and
    tests/test_automation_relay.py keeps the two in step. All parsing of the alert stays in Python.
    - the RequestBody must be a common-alert-schema alert from Azure Backup with a string alertId;
      anything else: one log line, no job;
    - a Resolved alert starts nothing;
    - the job's name is a UUID made of the SHA-256 of the alert's essentials.alertId, so a redelivered
      alert starts no second job (GET first; a 409 on PUT also means "already started");
    - the alert goes to the Python runbook as ONE parameter, its RequestBody serialized once more as a JSON
      string ("If you're calling a Python runbook using the API, the JSON payload must be serialized.",
      start-runbooks.md).
    PowerShell 7 may hand WebhookData over as a string, possibly not valid JSON (automation-webhooks.md,
    "Create a webhook" note); then the RequestBody is taken from between "RequestBody:" and ",RequestHeader:".
#>
param(
    [Parameter(Mandatory = $false)] [object] $WebhookData,
    [Parameter(Mandatory = $true)] [string] $AccountId,
    [Parameter(Mandatory = $true)] [string] $RelayClientId,
    [Parameter(Mandatory = $false)] [ValidateSet('dry-run', 'apply')] [string] $Mode = 'dry-run',
    [Parameter(Mandatory = $false)] [ValidateSet('true', 'false')] [string] $AllowDisruptive = 'false',
    [Parameter(Mandatory = $false)] [string] $FixClientId = ''
)

$ErrorActionPreference = 'Stop'
$FixRunbook = 'fix_backup_failure'
$ApiVersion = '2024-10-23'
$MaxBody = 262144
$Guid = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

if ($AccountId -notmatch '^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}/providers/Microsoft\.Automation/automationAccounts/[-A-Za-z0-9]{6,50}$') {
    throw 'AccountId is not an Automation account resource ID'
}
if ($RelayClientId -notmatch $Guid) { throw 'RelayClientId is not a GUID' }
if ($FixClientId -and $FixClientId -notmatch $Guid) { throw 'FixClientId is not a GUID' }

function Get-RelayStart([object] $Data) {
    # The job to start: @{ Job; Body } or a string saying why none is started.
    if ($Data -is [string]) {
        try { $Data = ConvertFrom-Json -InputObject $Data }
        catch {
            if ($Data -match '(?s)RequestBody:(\{.*\}),RequestHeader:') { $Data = [pscustomobject]@{ RequestBody = $Matches[1] } }
            else { $Data = $null }
        }
    }
    $body = if ($null -ne $Data) { $Data.RequestBody } else { $null }
    if (-not ($body -is [string]) -or -not $body.Trim()) { return 'no RequestBody: not an alert' }
    if ([System.Text.Encoding]::UTF8.GetByteCount($body) -gt $MaxBody) { return "RequestBody over $MaxBody bytes: not an alert" }
    try { $alert = ConvertFrom-Json -InputObject $body } catch { return 'RequestBody is not JSON: not an alert' }
    if (-not ($alert -is [System.Management.Automation.PSCustomObject])) { return 'not a azureMonitorCommonAlertSchema alert' }
    $essentials = $alert.data.essentials
    if ($alert.schemaId -cne 'azureMonitorCommonAlertSchema' -or -not ($essentials.alertId -is [string]) -or -not $essentials.alertId) {
        return 'not a azureMonitorCommonAlertSchema alert'
    }
    if ($essentials.monitoringService -cne 'Azure Backup') { return 'not an Azure Backup alert' }
    if ($essentials.monitorCondition -ceq 'Resolved') { return 'Resolved alert' }
    $sha = [System.Security.Cryptography.SHA256]::Create().ComputeHash([System.Text.Encoding]::UTF8.GetBytes($essentials.alertId))
    $h = -join ($sha[0..15] | ForEach-Object { $_.ToString('x2') })
    $variant = ([Convert]::ToInt32($h.Substring(16, 1), 16) -band 3) -bor 8
    $job = '{0}-{1}-8{2}-{3:x}{4}-{5}' -f $h.Substring(0, 8), $h.Substring(8, 4), $h.Substring(13, 3), $variant, $h.Substring(17, 3), $h.Substring(20, 12)
    return @{ Job = $job; Body = $body }
}

$start = Get-RelayStart $WebhookData
if ($start -is [string]) {
    Write-Output "relay: ignored: $start"
    return
}

Connect-AzAccount -Identity -AccountId $RelayClientId | Out-Null
$path = "$AccountId/jobs/$($start.Job)?api-version=$ApiVersion"
$existing = Invoke-AzRestMethod -Method GET -Path $path
if ($existing.StatusCode -eq 200) {
    Write-Output "relay: job $($start.Job) already started for this alert"
    return
}
$alert = ConvertTo-Json -InputObject $start.Body -Compress
$parameters = [ordered]@{ alert = $alert; mode = "mode=$Mode"; allow_disruptive = "allow_disruptive=$AllowDisruptive" }
if ($FixClientId) { $parameters['client_id'] = "client_id=$FixClientId" }
$payload = @{ properties = @{ runbook = @{ name = $FixRunbook }; parameters = $parameters } } | ConvertTo-Json -Depth 4 -Compress
$created = Invoke-AzRestMethod -Method PUT -Path $path -Payload $payload
if ($created.StatusCode -eq 409) {
    Write-Output "relay: job $($start.Job) already started for this alert"
}
elseif ($created.StatusCode -ge 300) {
    throw "relay: starting $FixRunbook failed with HTTP $($created.StatusCode)"
}
else {
    Write-Output "relay: started $FixRunbook job $($start.Job)"
}
