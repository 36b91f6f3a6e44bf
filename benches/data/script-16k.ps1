<powershell>
$ErrorActionPreference = "Stop"

# Step 0: configure component 0
function Invoke-Step0 {{
    param([string]$Name = "component-0")
    $settings = @{{ Name = $Name; Server = "{server_id}"; Retries = 1; Path = "C:\ProgramData\kasm\step0" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step0

# Step 1: configure component 1
function Invoke-Step1 {{
    param([string]$Name = "component-1")
    $settings = @{{ Name = $Name; Server = "{server_hostname}"; Retries = 2; Path = "C:\ProgramData\kasm\step1" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step1

# Step 2: configure component 2
function Invoke-Step2 {{
    param([string]$Name = "component-2")
    $settings = @{{ Name = $Name; Server = "{upstream_auth_address}"; Retries = 3; Path = "C:\ProgramData\kasm\step2" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step2

# Step 3: configure component 3
function Invoke-Step3 {{
    param([string]$Name = "component-3")
    $settings = @{{ Name = $Name; Server = "{checkin_jwt}"; Retries = 4; Path = "C:\ProgramData\kasm\step3" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step3

# Step 4: configure component 4
function Invoke-Step4 {{
    param([string]$Name = "component-4")
    $settings = @{{ Name = $Name; Server = "{connection_username}"; Retries = 5; Path = "C:\ProgramData\kasm\step4" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step4

# Step 5: configure component 5
function Invoke-Step5 {{
    param([string]$Name = "component-5")
    $settings = @{{ Name = $Name; Server = "{domain}"; Retries = 6; Path = "C:\ProgramData\kasm\step5" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step5

# Step 6: configure component 6
function Invoke-Step6 {{
    param([string]$Name = "component-6")
    $settings = @{{ Name = $Name; Server = "{ad_join_credential}"; Retries = 7; Path = "C:\ProgramData\kasm\step6" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step6

# Step 7: configure component 7
function Invoke-Step7 {{
    param([string]$Name = "component-7")
    $settings = @{{ Name = $Name; Server = "{provider_name}"; Retries = 1; Path = "C:\ProgramData\kasm\step7" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step7

# Step 8: configure component 8
function Invoke-Step8 {{
    param([string]$Name = "component-8")
    $settings = @{{ Name = $Name; Server = "{server_id}"; Retries = 2; Path = "C:\ProgramData\kasm\step8" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step8

# Step 9: configure component 9
function Invoke-Step9 {{
    param([string]$Name = "component-9")
    $settings = @{{ Name = $Name; Server = "{server_hostname}"; Retries = 3; Path = "C:\ProgramData\kasm\step9" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step9

# Step 10: configure component 10
function Invoke-Step10 {{
    param([string]$Name = "component-10")
    $settings = @{{ Name = $Name; Server = "{upstream_auth_address}"; Retries = 4; Path = "C:\ProgramData\kasm\step10" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step10

# Step 11: configure component 11
function Invoke-Step11 {{
    param([string]$Name = "component-11")
    $settings = @{{ Name = $Name; Server = "{checkin_jwt}"; Retries = 5; Path = "C:\ProgramData\kasm\step11" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step11

# Step 12: configure component 12
function Invoke-Step12 {{
    param([string]$Name = "component-12")
    $settings = @{{ Name = $Name; Server = "{connection_username}"; Retries = 6; Path = "C:\ProgramData\kasm\step12" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step12

# Step 13: configure component 13
function Invoke-Step13 {{
    param([string]$Name = "component-13")
    $settings = @{{ Name = $Name; Server = "{domain}"; Retries = 7; Path = "C:\ProgramData\kasm\step13" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step13

# Step 14: configure component 14
function Invoke-Step14 {{
    param([string]$Name = "component-14")
    $settings = @{{ Name = $Name; Server = "{ad_join_credential}"; Retries = 1; Path = "C:\ProgramData\kasm\step14" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step14

# Step 15: configure component 15
function Invoke-Step15 {{
    param([string]$Name = "component-15")
    $settings = @{{ Name = $Name; Server = "{provider_name}"; Retries = 2; Path = "C:\ProgramData\kasm\step15" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step15

# Step 16: configure component 16
function Invoke-Step16 {{
    param([string]$Name = "component-16")
    $settings = @{{ Name = $Name; Server = "{server_id}"; Retries = 3; Path = "C:\ProgramData\kasm\step16" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step16

# Step 17: configure component 17
function Invoke-Step17 {{
    param([string]$Name = "component-17")
    $settings = @{{ Name = $Name; Server = "{server_hostname}"; Retries = 4; Path = "C:\ProgramData\kasm\step17" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step17

# Step 18: configure component 18
function Invoke-Step18 {{
    param([string]$Name = "component-18")
    $settings = @{{ Name = $Name; Server = "{upstream_auth_address}"; Retries = 5; Path = "C:\ProgramData\kasm\step18" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step18

# Step 19: configure component 19
function Invoke-Step19 {{
    param([string]$Name = "component-19")
    $settings = @{{ Name = $Name; Server = "{checkin_jwt}"; Retries = 6; Path = "C:\ProgramData\kasm\step19" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step19

# Step 20: configure component 20
function Invoke-Step20 {{
    param([string]$Name = "component-20")
    $settings = @{{ Name = $Name; Server = "{connection_username}"; Retries = 7; Path = "C:\ProgramData\kasm\step20" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step20

# Step 21: configure component 21
function Invoke-Step21 {{
    param([string]$Name = "component-21")
    $settings = @{{ Name = $Name; Server = "{domain}"; Retries = 1; Path = "C:\ProgramData\kasm\step21" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step21

# Step 22: configure component 22
function Invoke-Step22 {{
    param([string]$Name = "component-22")
    $settings = @{{ Name = $Name; Server = "{ad_join_credential}"; Retries = 2; Path = "C:\ProgramData\kasm\step22" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step22

# Step 23: configure component 23
function Invoke-Step23 {{
    param([string]$Name = "component-23")
    $settings = @{{ Name = $Name; Server = "{provider_name}"; Retries = 3; Path = "C:\ProgramData\kasm\step23" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step23

# Step 24: configure component 24
function Invoke-Step24 {{
    param([string]$Name = "component-24")
    $settings = @{{ Name = $Name; Server = "{server_id}"; Retries = 4; Path = "C:\ProgramData\kasm\step24" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step24

# Step 25: configure component 25
function Invoke-Step25 {{
    param([string]$Name = "component-25")
    $settings = @{{ Name = $Name; Server = "{server_hostname}"; Retries = 5; Path = "C:\ProgramData\kasm\step25" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step25

# Step 26: configure component 26
function Invoke-Step26 {{
    param([string]$Name = "component-26")
    $settings = @{{ Name = $Name; Server = "{upstream_auth_address}"; Retries = 6; Path = "C:\ProgramData\kasm\step26" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step26

# Step 27: configure component 27
function Invoke-Step27 {{
    param([string]$Name = "component-27")
    $settings = @{{ Name = $Name; Server = "{checkin_jwt}"; Retries = 7; Path = "C:\ProgramData\kasm\step27" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step27

# Step 28: configure component 28
function Invoke-Step28 {{
    param([string]$Name = "component-28")
    $settings = @{{ Name = $Name; Server = "{connection_username}"; Retries = 1; Path = "C:\ProgramData\kasm\step28" }}
    foreach ($key in $settings.Keys) {{
        if ($settings[$key] -eq $null) {{ throw "missing $key" }}
        Write-Output ("{{0}}={{1}}" -f $key, $settings[$key])
    }}
    try {{
        New-Item -ItemType Directory -Force -Path $settings.Path | Out-Null
    }} catch {{ Write-Warning $_.Exception.Message }}
}}
Invoke-Step28
# marker 29: {domain}
</powershell>
################################################################################
################################################################################
################################################################################
################################################################################
######################################################
