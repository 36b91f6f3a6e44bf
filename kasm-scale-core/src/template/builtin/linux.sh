#!/bin/bash
# kasm-scale built-in Linux startup script (bash), rendered with Python str.format: literal
# braces are doubled. It names the host, joins Active Directory with the one-time password of the
# computer record kasm-scale created, creates the static session account when one is configured,
# installs xrdp when asked, and reports the server ready with its check-in token: now, and at
# every later boot or resume (a systemd unit), so that a server stopped into a warm tier and
# started days later checks in again.
#
# kasm-scale inserts every value below as ONE shell-quoted word, so that no character of a
# configured value (quote, $( ), backtick, newline…) runs as code. Kasm inserts values raw:
# do not paste this text into Kasm itself.
#
# On a multi-session host every user can read other processes' command lines (/proc/PID/cmdline)
# and any file left readable: secrets go to commands on their standard input, never as
# arguments (realm join is the one exception, below), the one file it writes with a secret (the
# check-in token, in /var/lib/kasm-scale, for the check-in at every boot) is root's alone, and
# the copies of this script and of its user data are made readable by root alone. The user data stays
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

# The check-in, at this boot and at every later one (a server of a warm tier is stopped once
# ready and started when needed: it must check in again before it takes sessions). Its values
# live in a directory only root may enter; the token file is mode 0600.
STATE_DIR=/var/lib/kasm-scale
mkdir -p -- "$STATE_DIR"
chown root:root -- "$STATE_DIR"
chmod 0700 -- "$STATE_DIR"
rm -f -- "$STATE_DIR/token"
(
    umask 077
    printf '%s' "$TOKEN" > "$STATE_DIR/token"
    printf '%s' "$CHECKIN_URL" > "$STATE_DIR/url"
    printf '%s' "$SERVER_HOSTNAME" > "$STATE_DIR/hostname"
)
chmod 0600 -- "$STATE_DIR/token"
# The body (with the token) goes on curl's stdin (`--data-binary @-`), written by the printf
# builtin: the token is no process's argument (`$(<file)` is read by bash itself).
cat > "$STATE_DIR/checkin" <<'CHECKIN'
#!/bin/bash
# kasm-scale check-in: tells kasm-scale this server is up (at first boot and every later boot).
set -uo pipefail
dir=/var/lib/kasm-scale
token=$(<"$dir/token")
url=$(<"$dir/url")
hostname=$(<"$dir/hostname")
for _ in $(seq 1 20); do
    if printf '{{"token":"%s","status":"running","status_message":"%s ready","status_progress":"100"}}' "$token" "$hostname" |
        curl -fsS -X POST "$url" -H 'Content-Type: application/json' --data-binary @- >/dev/null; then
        exit 0
    fi
    sleep 15
done
exit 1
CHECKIN
chmod 0700 -- "$STATE_DIR/checkin"
# Started at every boot once the network is up, and after a resume from hibernation (no boot).
cat > /etc/systemd/system/kasm-scale-checkin.service <<'UNIT'
[Unit]
Description=kasm-scale check-in (at every boot and resume)
Wants=network-online.target
After=network-online.target hibernate.target hybrid-sleep.target suspend-then-hibernate.target

[Service]
Type=oneshot
ExecStart=/var/lib/kasm-scale/checkin
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target hibernate.target hybrid-sleep.target suspend-then-hibernate.target
UNIT
chmod 0644 /etc/systemd/system/kasm-scale-checkin.service
systemctl enable kasm-scale-checkin.service
exec "$STATE_DIR/checkin"
