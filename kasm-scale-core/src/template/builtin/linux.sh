#!/bin/bash
# kasm-scale built-in Linux startup script (bash), rendered with Python str.format: literal
# braces are doubled. It names the host, joins Active Directory with the one-time password of the
# computer record kasm-scale created, creates the static session account when one is configured,
# installs xrdp when asked, and reports the server ready with its check-in token.
#
# kasm-scale inserts every value below as ONE shell-quoted word, so that no character of a
# configured value (quote, $( ), backtick, newline…) runs as code. Kasm inserts values raw:
# do not paste this text into Kasm itself.
#
# On a multi-session host every user can read other processes' command lines (/proc/PID/cmdline)
# and any file left readable: secrets go to commands on their standard input, never as
# arguments (realm join is the one exception, below), the script writes no file, and the copies
# of this script and of its user data are made readable by root alone. The user data stays
# readable to local users through the metadata service: see docs/service.md, "Security
# and limits".
set -euo pipefail

# --- values (each one shell-quoted word, inserted by kasm-scale) ---
SERVER_HOSTNAME={server_hostname}
DOMAIN={domain}
UPSTREAM_AUTH_ADDRESS={upstream_auth_address}
INSTALL_XRDP={install_xrdp}
SESSION_USER={connection_username}
SESSION_PASSWORD={connection_password}
JOIN_PASSWORD={ad_join_credential}
TOKEN={checkin_jwt}
# --- end of values ---

# This script and the copies of the user data it came in hold the token and the passwords:
# root only (cloud-init and the Azure agent write theirs 0600; an image may not).
for copy in "${{BASH_SOURCE[0]:-}}" /var/lib/cloud/instance/user-data.txt \
    /var/lib/cloud/instance/user-data.txt.i /var/lib/waagent/CustomData /var/lib/waagent/ovf-env.xml; do
    if [ -n "$copy" ] && [ -f "$copy" ]; then
        chmod go-rwx -- "$copy"
    fi
done

CHECKIN_URL="https://${{UPSTREAM_AUTH_ADDRESS}}/api/set_server_status"

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
    # realm takes a one-time password only as an argument (realmd then hands it to adcli on
    # stdin), so it is visible in /proc while realm runs. That is before any session can exist:
    # no domain user can log on before the join, and the session account and xrdp come after.
    # The join consumes it: adcli sets a new machine password.
    realm join --one-time-password="$JOIN_PASSWORD" -- "$DOMAIN"
else
    hostnamectl set-hostname "${{SERVER_HOSTNAME,,}}"
fi

if [ "$SESSION_USER" != "None" ] && [ -n "$SESSION_USER" ]; then
    # chpasswd reads `user:password` lines: a name with `:` or a line break, or a password with
    # a line break, would set another account's password (the configuration check refuses them).
    case "$SESSION_USER" in *:* | *$'\n'* | *$'\r'*) echo "invalid session user name" >&2; exit 1 ;; esac
    case "$SESSION_PASSWORD" in *$'\n'* | *$'\r'*) echo "invalid session password" >&2; exit 1 ;; esac
    id -- "$SESSION_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash -- "$SESSION_USER"
    # On stdin (printf is a builtin): the password is no process's argument.
    printf '%s:%s\n' "$SESSION_USER" "$SESSION_PASSWORD" | chpasswd
fi

if [ "$INSTALL_XRDP" = "true" ]; then
    install_packages xrdp
    systemctl enable --now xrdp
fi

# The body (with the token) goes on curl's stdin (`--data-binary @-`), written by the printf
# builtin: it is no process's argument.
checkin_body() {{
    printf '{{"token":"%s","status":"running","status_message":"%s ready","status_progress":"100"}}' "$TOKEN" "$SERVER_HOSTNAME"
}}
for _ in $(seq 1 20); do
    if checkin_body | curl -fsS -X POST "$CHECKIN_URL" -H 'Content-Type: application/json' --data-binary @- >/dev/null; then
        exit 0
    fi
    sleep 15
done
exit 1
