#!/bin/bash
# kasm-scale built-in Linux startup script (bash), rendered with Python str.format: literal
# braces are doubled. It names the host, joins Active Directory with the one-time password of the
# computer record kasm-scale created, creates the static session account when one is configured,
# installs xrdp when asked, and reports the server ready with its check-in token.
set -euo pipefail

SERVER_HOSTNAME='{server_hostname}'
DOMAIN='{domain}'
CHECKIN_URL='https://{upstream_auth_address}/api/set_server_status'
INSTALL_XRDP='{install_xrdp}'
SESSION_USER='{connection_username}'
# Secrets come through quoted here-documents: no character in them is special to the shell.
JOIN_PASSWORD=$(cat <<'KASM_SCALE_EOF'
{ad_join_credential}
KASM_SCALE_EOF
)
SESSION_PASSWORD=$(cat <<'KASM_SCALE_EOF'
{connection_password}
KASM_SCALE_EOF
)
TOKEN=$(cat <<'KASM_SCALE_EOF'
{checkin_jwt}
KASM_SCALE_EOF
)

install_packages() {{
    if command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    else
        dnf install -y -q "$@"
    fi
}}

if [ -n "$DOMAIN" ]; then
    # realm join needs the FQDN to be <name>.<domain>.
    hostnamectl set-hostname "${{SERVER_HOSTNAME,,}}.${{DOMAIN}}"
    install_packages realmd sssd sssd-tools adcli samba-common-bin packagekit
    realm join --one-time-password="$JOIN_PASSWORD" "$DOMAIN"
else
    hostnamectl set-hostname "${{SERVER_HOSTNAME,,}}"
fi

if [ "$SESSION_USER" != "None" ] && [ -n "$SESSION_USER" ]; then
    id "$SESSION_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SESSION_USER"
    printf '%s:%s\n' "$SESSION_USER" "$SESSION_PASSWORD" | chpasswd
fi

if [ "$INSTALL_XRDP" = "true" ]; then
    install_packages xrdp
    systemctl enable --now xrdp
fi

body=$(printf '{{"token":"%s","status":"running","status_message":"%s ready","status_progress":"100"}}' "$TOKEN" "$SERVER_HOSTNAME")
for _ in $(seq 1 20); do
    if curl -fsS -X POST "$CHECKIN_URL" -H 'Content-Type: application/json' --data-binary "$body" >/dev/null; then
        exit 0
    fi
    sleep 15
done
exit 1
