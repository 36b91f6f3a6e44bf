# kasm-scale built-in Windows startup script (PowerShell), rendered with Python str.format:
# literal braces are doubled. It creates the static session account when one is configured,
# joins Active Directory with the one-time password of the computer record kasm-scale created
# (renaming the VM to its server name), optionally configures FSLogix profile containers, and
# reports the server ready with its check-in token: now (or after the join restart) and at every
# later boot, from a scheduled task, so that a server stopped into a warm tier and started days
# later checks in again.
#
# kasm-scale inserts every value below as ONE PowerShell string literal ('…' with ' doubled, or
# a base64 expression for text that is not printable ASCII), so that no character of a
# configured value ($, ", backtick, quote, newline…) runs as code. Kasm inserts values raw: do
# not paste this text into Kasm itself.
#
# On a multi-session host every user can read C:\ProgramData and C:\AzureData by default: the
# files that hold a secret are locked to SYSTEM and the Administrators group (the check-in
# token's file stays, for the check-in at every boot), and no secret is an argument of a native
# command (the values stay inside PowerShell: SecureString, PSCredential, Invoke-RestMethod).
# The user data stays readable to local users through the metadata service: see
# docs/service.md ("Security and limits").
$ErrorActionPreference = "Stop"

# --- values (each one PowerShell string literal, inserted by kasm-scale) ---
$ServerHostname = {server_hostname}
$Domain = {domain}
$UpstreamAuthAddress = {upstream_auth_address}
$VhdLocations = {fslogix_vhd_locations}
$CcdLocations = {fslogix_ccd_locations}
$SessionUser = {connection_username}
$SessionPasswordText = {connection_password}
$JoinPasswordText = {ad_join_credential}
$CheckinToken = {checkin_jwt}
# --- end of values ---

# Only SYSTEM (S-1-5-18) and the Administrators group (S-1-5-32-544) may use $Path: a new access
# list, not inherited, that replaces the whole one (SIDs, not names, which are localized).
function Protect-Path([string] $Path) {{
    if ((Get-Item -LiteralPath $Path -Force).PSIsContainer) {{
        $acl = New-Object System.Security.AccessControl.DirectorySecurity
        $inherit = "ContainerInherit, ObjectInherit"
    }} else {{
        $acl = New-Object System.Security.AccessControl.FileSecurity
        $inherit = "None"
    }}
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in "S-1-5-18", "S-1-5-32-544") {{
        $identity = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule -ArgumentList $identity, "FullControl", $inherit, "None", "Allow"))
    }}
    Set-Acl -LiteralPath $Path -AclObject $acl
}}

# This script and the copy of the user data Azure leaves (C:\AzureData\CustomData.bin) hold the
# token and the passwords. A failure here is reported, not fatal: the metadata service still
# serves the same data (see docs/service.md, "Security and limits").
foreach ($copy in @($PSCommandPath, (Join-Path $env:SystemDrive "AzureData\CustomData.bin"))) {{
    if ($copy -and (Test-Path -LiteralPath $copy)) {{
        try {{ Protect-Path $copy }} catch {{ Write-Warning "cannot restrict access to $copy" }}
    }}
}}

$StateDir = Join-Path $env:ProgramData "kasm-scale"
New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
Protect-Path $StateDir
# A file left by an earlier run keeps its own access list: remove it before writing the token.
Remove-Item -LiteralPath "$StateDir\checkin.json" -Force -ErrorAction SilentlyContinue

# The check-in runs from a file, from a scheduled task at every startup (after the domain-join
# restart, and whenever a stopped server is started again); it reads its values from
# checkin.json next to it, which only SYSTEM and Administrators may read.
@{{ url = 'https://' + $UpstreamAuthAddress + '/api/set_server_status'; token = $CheckinToken; hostname = $ServerHostname }} |
    ConvertTo-Json | Set-Content -Path "$StateDir\checkin.json" -Encoding UTF8
$Checkin = @'
$c = Get-Content -Raw -Encoding UTF8 -Path (Join-Path $PSScriptRoot "checkin.json") | ConvertFrom-Json
$body = @{{ token = $c.token; status = "running"; status_message = $c.hostname + " ready"; status_progress = "100" }} | ConvertTo-Json
for ($i = 0; $i -lt 20; $i++) {{
    try {{
        Invoke-RestMethod -Method Post -Uri $c.url -ContentType "application/json" -Body $body | Out-Null
        exit 0
    }} catch {{ Start-Sleep -Seconds 15 }}
}}
exit 1
'@
Set-Content -Path "$StateDir\checkin.ps1" -Value $Checkin
# At every startup, and after a resume from hibernation (not a startup: the event Windows logs
# when it returns from a low power state), as SYSTEM (no password is stored).
$action = New-ScheduledTaskAction -Execute "powershell.exe" -Argument "-NoProfile -ExecutionPolicy Bypass -File $StateDir\checkin.ps1"
$resume = New-CimInstance -CimClass (Get-CimClass -Namespace "Root/Microsoft/Windows/TaskScheduler" -ClassName "MSFT_TaskEventTrigger") -ClientOnly
$resume.Enabled = $true
$resume.Subscription = '<QueryList><Query Id="0" Path="System"><Select Path="System">*[System[Provider[@Name=''Microsoft-Windows-Power-Troubleshooter''] and EventID=1]]</Select></Query></QueryList>'
Register-ScheduledTask -TaskName "kasm-scale-checkin" -Action $action -Trigger @((New-ScheduledTaskTrigger -AtStartup), $resume) -User "SYSTEM" -RunLevel Highest -Force | Out-Null

# Static session account (Kasm renders an unset value as None).
if ($SessionUser -ne "None" -and $SessionUser -ne "") {{
    $SessionPassword = ConvertTo-SecureString -String $SessionPasswordText -AsPlainText -Force
    if (-not (Get-LocalUser -Name $SessionUser -ErrorAction SilentlyContinue)) {{
        New-LocalUser -Name $SessionUser -Password $SessionPassword -PasswordNeverExpires | Out-Null
    }}
    Add-LocalGroupMember -Group "Remote Desktop Users" -Member $SessionUser -ErrorAction SilentlyContinue
}}

# FSLogix profile containers on an SMB / Azure Files share (VHDLocations), or Cloud Cache.
if ($VhdLocations -ne "" -or $CcdLocations -ne "") {{
    $zip = "$env:TEMP\fslogix.zip"
    Invoke-WebRequest -Uri "https://aka.ms/fslogix_download" -OutFile $zip -UseBasicParsing
    Expand-Archive -Path $zip -DestinationPath "$env:TEMP\fslogix" -Force
    Start-Process -FilePath "$env:TEMP\fslogix\x64\Release\FSLogixAppsSetup.exe" -ArgumentList "/install /quiet /norestart" -Wait
    $key = "HKLM:\SOFTWARE\FSLogix\Profiles"
    New-Item -Path $key -Force | Out-Null
    Set-ItemProperty -Path $key -Name "Enabled" -Value 1 -Type DWord
    Set-ItemProperty -Path $key -Name "DeleteLocalProfileWhenVHDShouldApply" -Value 1 -Type DWord
    Set-ItemProperty -Path $key -Name "FlipFlopProfileDirectoryName" -Value 1 -Type DWord
    if ($CcdLocations -ne "") {{
        Set-ItemProperty -Path $key -Name "CCDLocations" -Value $CcdLocations -Type MultiString
    }} else {{
        Set-ItemProperty -Path $key -Name "VHDLocations" -Value $VhdLocations -Type MultiString
    }}
}}

if ($Domain -ne "") {{
    # Unsecured join with the one-time password: the credential has no user name.
    $JoinPassword = ConvertTo-SecureString -String $JoinPasswordText -AsPlainText -Force
    $JoinCredential = New-Object System.Management.Automation.PSCredential -ArgumentList ([pscustomobject]@{{ UserName = $null; Password = $JoinPassword }})
    Add-Computer -DomainName $Domain -NewName $ServerHostname -Credential $JoinCredential -Options UnsecuredJoin,PasswordPass,JoinWithNewName -Force
    # The scheduled task checks in after the restart.
    Restart-Computer -Force
}} else {{
    Rename-Computer -NewName $ServerHostname -Force -ErrorAction SilentlyContinue
    & powershell.exe -NoProfile -ExecutionPolicy Bypass -File "$StateDir\checkin.ps1"
}}
