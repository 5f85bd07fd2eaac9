#!/usr/bin/env bash
# A real mail stack for the tests: Postfix (SMTP in, LMTP out) and Dovecot (IMAP, POP3, LMTP, SASL)
# on 127.0.0.1, run as root with every file — config, queue, certificates, mail, logs, pid files,
# sockets — in one state folder, so it never touches a system-wide instance. The one system file it
# edits is /etc/postfix/main.cf's alternate_config_directories (Postfix refuses `-c DIR` otherwise).
#
#   bash scripts/mailstack.sh start            # idempotent; waits until every port answers
#   bash scripts/mailstack.sh stop [--purge]   # --purge also removes the state folder
#   bash scripts/mailstack.sh status           # exit 0 only when Postfix and Dovecot both run
#   bash scripts/mailstack.sh env [--json]     # how to reach it (KEY=value lines, or one JSON object)
#   bash scripts/mailstack.sh restart-dovecot  # for tests that check clients reconnect
#   bash scripts/mailstack.sh restart-postfix  # the same for SMTP
#   bash scripts/mailstack.sh stop-postfix | start-postfix   # an SMTP outage of any length
#   bash scripts/mailstack.sh logs             # the tail of both logs
#
# Three providers (isp-a.test, isp-b.test, game.test); any local part is an account, every account's
# password is "mailmeet-test", and each keeps a standard Maildir at $MAILSTACK_DIR/spool/<address>.
# A fourth, oauth.test, takes no password at all: its accounts log in with OAUTHBEARER or XOAUTH2,
# and Dovecot's oauth2 passdb asks the introspection endpoint a test serves on 127.0.0.1:10081
# (RFC 7662 style: token=… in, {"active":true,"email":"…"} out) whether a token is good. Postfix's
# SMTP AUTH goes through Dovecot's SASL, so the same holds for sending.
set -euo pipefail
# A caller may hold the test suite's lock (flock /tmp/mailmeet-suite.lock …) on a descriptor we
# inherit; a daemon started here would inherit it too and hold the lock until it exits, and every
# later run would wait for ever. Close every inherited descriptor but the standard three (and the
# script's own, 255).
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  case "$fd" in 0 | 1 | 2 | 255 | *[!0-9]*) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
done
# postfix, dovecot and postconf live in sbin, which a non-login root shell may not have on its PATH.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

S="${MAILSTACK_DIR:-/tmp/mailmeet-mailstack}"
case "$S" in /*) ;; *) S="$PWD/$S" ;; esac
S="${S%/}"

HOST=127.0.0.1
PASSWORD=mailmeet-test
DOMAINS=(isp-a.test isp-b.test game.test)
OAUTH_DOMAIN=oauth.test
# Not 10080: fetch() refuses that port (the Fetch standard's "bad ports", Amanda).
OAUTH_INTROSPECT_PORT=10081
NAMES=(alice bob carol dave host)
SMTP_PORT=10025 SUBMISSION_PORT=10587 SMTPS_PORT=10465
IMAP_PORT=10143 IMAPS_PORT=10993 POP3_PORT=10110 POP3S_PORT=10995
POSTFIX_PORTS=("$SMTP_PORT" "$SUBMISSION_PORT" "$SMTPS_PORT")
DOVECOT_PORTS=("$IMAP_PORT" "$IMAPS_PORT" "$POP3_PORT" "$POP3S_PORT")
START_TIMEOUT_S=30

PF_ETC="$S/postfix/etc"
PF_QUEUE="$S/postfix/queue"
PF_DATA="$S/postfix/data"
DC_CONF="$S/dovecot/dovecot.conf"
DC_BASE="$S/dovecot/run"
TLS="$S/tls"
CA_PEM="$S/ca.pem"
SPOOL="$S/spool"
PF_LOG="$S/postfix.log"
DC_LOG="$S/dovecot.log"
LMTP_SOCKET="$DC_BASE/lmtp"
AUTH_SOCKET="$DC_BASE/auth-client"
MAIL_USER=dovenull

say() { echo "mailstack: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# --- installation ----------------------------------------------------------------------------------

# Prints the Debian packages whose programs are missing (nothing when all are there).
missing_packages() {
  command -v postfix >/dev/null 2>&1 || echo postfix
  { command -v dovecot && command -v doveadm; } >/dev/null 2>&1 || echo dovecot-core
  [ -x /usr/lib/dovecot/imap ] || echo dovecot-imapd
  [ -x /usr/lib/dovecot/pop3 ] || echo dovecot-pop3d
  [ -x /usr/lib/dovecot/lmtp ] || echo dovecot-lmtpd
  command -v openssl >/dev/null 2>&1 || echo openssl
  command -v flock >/dev/null 2>&1 || echo util-linux
  return 0
}

install_packages() {
  local pkgs
  # shellcheck disable=SC2207
  pkgs=($(missing_packages))
  [ "${#pkgs[@]}" = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${pkgs[*]}, and installing them needs root"
  command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]}, and there is no apt-get to install them"
  say "installing ${pkgs[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${pkgs[@]}" >"$S/apt.log" 2>&1; then
    apt-get update -q >>"$S/apt.log" 2>&1 || true
    apt-get install -y -q "${pkgs[@]}" >>"$S/apt.log" 2>&1 || {
      tail -n 30 "$S/apt.log" >&2
      die "apt-get install ${pkgs[*]} failed (log: $S/apt.log)"
    }
  fi
  pkgs=($(missing_packages))
  [ "${#pkgs[@]}" = 0 ] || die "still missing after apt-get install: ${pkgs[*]}"
}

# --- state folder, certificates, configuration -----------------------------------------------------

make_certs() {
  [ -s "$CA_PEM" ] && [ -s "$TLS/server.pem" ] && [ -s "$TLS/server.key" ] && return 0
  say "creating a private CA and a server certificate in $TLS"
  mkdir -p "$TLS"
  chmod 0700 "$TLS"
  local tmp="$TLS/tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # P-256 keys: instant to generate, accepted by OpenSSL's default security level and by rustls.
  openssl ecparam -genkey -name prime256v1 -noout -out "$tmp/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 -subj "/CN=mailmeet test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.pem" 2>/dev/null
  openssl ecparam -genkey -name prime256v1 -noout -out "$tmp/server.key" 2>/dev/null
  openssl req -new -key "$tmp/server.key" -subj "/CN=mail.test" -out "$tmp/server.csr" 2>/dev/null
  cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:mail.test, IP:127.0.0.1
EOF
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null
  openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" >/dev/null
  chmod 0600 "$tmp/ca.key" "$tmp/server.key"
  mv "$tmp/ca.key" "$TLS/ca.key"
  mv "$tmp/server.key" "$TLS/server.key"
  mv "$tmp/server.pem" "$TLS/server.pem"
  chmod 0644 "$tmp/ca.pem"
  mv "$tmp/ca.pem" "$CA_PEM"
  rm -rf "$tmp"
}

# Postfix refuses `postfix -c DIR` (and its set-gid helpers) unless the default main.cf lists DIR.
register_config_dir() {
  local main=/etc/postfix/main.cf current
  [ -f "$main" ] || { printf '%s\n' "compatibility_level = 3.6" >"$main"; }
  current="$(postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null || true)"
  case " ${current//,/ } " in *" $PF_ETC "*) return 0 ;; esac
  postconf -c /etc/postfix -e "alternate_config_directories = ${current:+$current, }$PF_ETC"
}

# Writes $1 from stdin only when it differs; returns 0 when the file changed.
write_if_changed() {
  local file="$1" tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$file"
  return 0
}

POSTFIX_CHANGED=0
DOVECOT_CHANGED=0

write_postfix_config() {
  mkdir -p "$PF_ETC" "$PF_QUEUE" "$PF_DATA"
  chown root:root "$S/postfix" "$PF_ETC" "$PF_QUEUE"
  chmod 0755 "$S/postfix" "$PF_ETC" "$PF_QUEUE"
  chown postfix:postfix "$PF_DATA"
  chmod 0700 "$PF_DATA"
  if write_if_changed "$PF_ETC/main.cf" <<EOF; then POSTFIX_CHANGED=1; fi
# Written by scripts/mailstack.sh — edits are overwritten on the next start.
compatibility_level = 3.6
config_directory = $PF_ETC
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
maillog_file = $PF_LOG
maillog_file_prefixes = /var, /dev/stdout, $S
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
syslog_name = mailmeet-postfix

myhostname = mail.test
mydomain = mail.test
myorigin = mail.test
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relayhost =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = \$myhostname ESMTP mailmeet test stack

# The three providers: any local part is a mailbox (tests use fresh addresses), delivered over LMTP
# to Dovecot, which stores one Maildir per full address.
virtual_mailbox_domains = ${DOMAINS[*]} $OAUTH_DOMAIN
virtual_mailbox_maps =
virtual_transport = lmtp:unix:$LMTP_SOCKET
smtpd_reject_unlisted_recipient = no
local_transport = error:5.1.1 local delivery is disabled
default_transport = error:5.7.1 mail for other domains is not accepted here
relay_transport = error:5.7.1 mail for other domains is not accepted here
# Nobody relays: mail to any other domain is refused at RCPT time. The one exception: an
# authenticated sender may send to a mistyped *.test domain (gmae.test), which is then bounced at
# once as a provider bounces a domain it cannot look up, so tests can read a real RFC 3464 bounce.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
mailstack_submission_relay = check_recipient_access regexp:$PF_ETC/typo_domains, reject_unauth_destination
transport_maps = regexp:$PF_ETC/transport

# TLS: offered on the MX port, required before AUTH on submission, implicit on smtps.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $TLS/server.pem
smtpd_tls_key_file = $TLS/server.key
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 0
smtpd_tls_session_cache_database =
smtp_tls_security_level = none
lmtp_tls_security_level = none
smtpd_sasl_type = dovecot
smtpd_sasl_path = $AUTH_SOCKET
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
broken_sasl_auth_clients = no

# Fast: no DNS, no reverse lookups, no waiting, quick retries after a Dovecot restart.
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
in_flow_delay = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtpd_junk_command_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_timeout = 60s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
delay_warning_time = 0
lmtp_connection_cache_on_demand = yes
lmtp_connection_cache_destinations = unix:$LMTP_SOCKET
lmtp_connection_cache_time_limit = 2s
default_process_limit = 50
content_filter =
smtpd_milters =
non_smtpd_milters =
header_checks =
body_checks =
EOF

  # A mistyped *.test domain (not one of the three): accepted from authenticated senders only, and
  # bounced at once with the words Postfix uses when it cannot look a domain up (transport_maps
  # are looked up by the bare domain too, and take no $1 substitution).
  local ours
  ours="$(printf '%s|' "${DOMAINS[@]}" "$OAUTH_DOMAIN" | sed 's/|$//; s/\./\\./g')"
  if write_if_changed "$PF_ETC/typo_domains" <<EOF; then POSTFIX_CHANGED=1; fi
/@[^@]+\.test\$/ OK
EOF
  if write_if_changed "$PF_ETC/transport" <<EOF; then POSTFIX_CHANGED=1; fi
if !/(^|@)($ours)\$/
/\.test\$/ error:5.1.2 Host or domain name not found
endif
EOF

  # No chroot anywhere (the state folder holds everything); one smtpd per port.
  if write_if_changed "$PF_ETC/master.cf" <<EOF; then POSTFIX_CHANGED=1; fi
# Written by scripts/mailstack.sh — edits are overwritten on the next start.
# service          type  private unpriv chroot wakeup maxproc command + args
$HOST:$SMTP_PORT  inet  n       -      n      -      -       smtpd
$HOST:$SUBMISSION_PORT  inet  n       -      n      -      -       smtpd
  -o syslog_name=mailmeet-postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$mailstack_submission_relay
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
$HOST:$SMTPS_PORT  inet  n       -      n      -      -       smtpd
  -o syslog_name=mailmeet-postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$mailstack_submission_relay
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
EOF
}

write_dovecot_config() {
  mkdir -p "$S/dovecot" "$DC_BASE" "$S/dovecot/state" "$SPOOL"
  chown "$MAIL_USER:$MAIL_USER" "$SPOOL"
  chmod 0755 "$SPOOL"
  if write_if_changed "$DC_CONF" <<EOF; then DOVECOT_CHANGED=1; fi
# Written by scripts/mailstack.sh — edits are overwritten on the next start.
instance_name = mailmeet-mailstack
base_dir = $DC_BASE
state_dir = $S/dovecot/state
log_path = $DC_LOG
info_log_path = $DC_LOG
debug_log_path = $DC_LOG
protocols = imap pop3 lmtp
listen = $HOST
hostname = mail.test
postmaster_address = postmaster@mail.test
# LMTP refuses users below first_valid_uid; the system's dovenull user (uid > 100) owns the mail.
first_valid_uid = 100
first_valid_gid = 100

ssl = yes
ssl_cert = <$TLS/server.pem
ssl_key = <$TLS/server.key
ssl_min_protocol = TLSv1.2

auth_mechanisms = plain login oauthbearer xoauth2
auth_failure_delay = 0
# Any user on the password domains logs in with the one password; mail lives in spool/<address>.
passdb {
  driver = static
  args = password=$PASSWORD
  mechanisms = plain login
  username_filter = !*@$OAUTH_DOMAIN
}
# $OAUTH_DOMAIN logs in only with a bearer token that the test's introspection endpoint vouches for;
# a password is refused outright (deny), so a passing login there proves the token path.
passdb {
  driver = static
  args = nopassword=y
  deny = yes
  mechanisms = plain login
  username_filter = *@$OAUTH_DOMAIN
}
passdb {
  driver = oauth2
  mechanisms = oauthbearer xoauth2
  username_filter = *@$OAUTH_DOMAIN
  args = $S/dovecot/oauth2.conf.ext
}
# allow_all_users: LMTP's user lookup must not ask the passdbs, which are all mechanism-filtered
# (a lookup without a mechanism skips them all, and Dovecot calls that an internal error).
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER allow_all_users=yes
}
mail_location = maildir:$SPOOL/%Lu
# Files hold the message as it travelled (CRLF), like mailmeet's maildir: transport writes them.
mail_save_crlf = yes
namespace inbox {
  inbox = yes
}
# Keep "a+b@x" a mailbox of its own, as mailmeet's maildir: transport does.
recipient_delimiter =
lmtp_save_to_detail_mailbox = no
mail_max_userip_connections = 200
protocol imap {
  mail_max_userip_connections = 200
}
protocol pop3 {
  mail_max_userip_connections = 200
}
# IDLE is pushed by inotify (Dovecot then waits a fixed 500 ms, NOTIFY_DELAY_MSECS in its source,
# before it reports EXISTS); the interval is only a fallback.
mailbox_idle_check_interval = 1 secs
imap_hibernate_timeout = 0

default_client_limit = 2000
default_process_limit = 200
# Many short test connections: long-lived login processes instead of one fork per connection.
service imap-login {
  inet_listener imap {
    address = $HOST
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = $HOST
    port = $IMAPS_PORT
    ssl = yes
  }
  service_count = 0
  process_min_avail = 2
}
service pop3-login {
  inet_listener pop3 {
    address = $HOST
    port = $POP3_PORT
  }
  inet_listener pop3s {
    address = $HOST
    port = $POP3S_PORT
    ssl = yes
  }
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_limit = 1000
}
service pop3 {
  process_limit = 1000
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
  process_min_avail = 1
}
# No anvil penalty (see start_dovecot): Postfix's SASL requests from 127.0.0.1 carry no "no-penalty", so one test that
# tries a wrong password would otherwise slow every later login from 127.0.0.1 by 2-15 s.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
}
service imap-urlauth-login {
  inet_listener imap-urlauth {
    port = 0
  }
}
service doveadm {
  inet_listener {
    port = 0
  }
}
EOF
}

write_dovecot_oauth2_config() {
  if write_if_changed "$S/dovecot/oauth2.conf.ext" <<EOF; then DOVECOT_CHANGED=1; fi
# Written by scripts/mailstack.sh — edits are overwritten on the next start.
introspection_mode = post
introspection_url = http://$HOST:$OAUTH_INTROSPECT_PORT/introspect
force_introspection = yes
username_attribute = email
active_attribute = active
active_value = true
EOF
}

# --- processes -------------------------------------------------------------------------------------

# Prints the pid in a pid file when that process is alive and runs the expected program.
live_pid() {
  local file="$1" comm="$2" pid
  [ -s "$file" ] || return 1
  pid="$(head -n 1 "$file" | tr -dc '0-9')"
  [ -n "$pid" ] && alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
  echo "$pid"
}
postfix_pid() { live_pid "$PF_QUEUE/pid/master.pid" master; }
dovecot_pid() { live_pid "$DC_BASE/master.pid" dovecot; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Waits until every port given answers; prints the ones that never did.
wait_ports() {
  local deadline=$((SECONDS + START_TIMEOUT_S)) p missing
  while :; do
    missing=()
    for p in "$@"; do port_open "$p" || missing+=("$p"); done
    [ "${#missing[@]}" = 0 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "${missing[*]}"
      return 1
    fi
    sleep 0.05
  done
}

# True while a pid runs. A zombie counts as gone: the daemons' parent is the container's init,
# which may take a second or more to reap them.
alive() {
  local rest
  read -r rest <"/proc/$1/stat" 2>/dev/null || return 1
  rest="${rest##*) }"
  [ "${rest%% *}" != Z ]
}

wait_gone() {
  local pid="$1" i
  for i in $(seq 1 400); do
    alive "$pid" || return 0
    sleep 0.025
  done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

show_logs() {
  local n="${1:-25}" f
  for f in "$PF_LOG" "$DC_LOG"; do
    echo "---- last lines of $f" >&2
    if [ -f "$f" ]; then tail -n "$n" "$f" >&2; else echo "(none)" >&2; fi
  done
}

# Keeps a log from growing without bound across many test runs (only while its writer is down).
trim_log() {
  local size
  size="$(stat -c %s "$1" 2>/dev/null || echo 0)"
  [ "$size" -gt $((20 * 1024 * 1024)) ] && mv -f "$1" "$1.old"
  return 0
}

# Runs "$@" with every file descriptor above 2 closed. A daemon must not keep a descriptor it
# inherited: the test suite runs under `flock /tmp/mailmeet-suite.lock`, and a Dovecot started
# (or restarted by a test) with that descriptor open would hold the lock for as long as it runs.
# Bash reads this script through descriptor 255 (and shares its offset with subshells): that one
# stays, or the running script would lose its place.
detached() (
  local fd
  for fd in $(ls "/proc/$BASHPID/fd" 2>/dev/null); do
    [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ] && eval "exec $fd>&-" 2>/dev/null
  done
  exec "$@"
)

start_dovecot() {
  dovecot_pid >/dev/null && return 0
  trim_log "$DC_LOG"
  # A leftover anvil-auth-penalty socket (the listener is disabled below) makes the auth process
  # retry connecting to it for 5 s on every start; without the file it skips the penalty silently.
  rm -f "$DC_BASE/master.pid" "$DC_BASE/anvil-auth-penalty"
  if ! detached dovecot -c "$DC_CONF" >>"$DC_LOG" 2>&1; then
    show_logs
    die "Dovecot failed to start (config: $DC_CONF)"
  fi
}

# Parent pid of a pid, from /proc (procps may be missing on a fresh machine).
ppid_of() {
  local rest
  read -r rest <"/proc/$1/stat" 2>/dev/null || return 1
  rest="${rest##*) }" # the fields after "pid (comm) ": state ppid ...
  rest="${rest#* }"
  echo "${rest%% *}"
}

children_of() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(ppid_of "${d#/proc/}" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"
  done
  return 0
}

# Stops a master process and its children (signalled together: Dovecot's login processes that proxy
# a TLS session, and the imap/pop3 processes behind them, would otherwise outlive their master to
# finish their sessions, and clients would not see a restart).
stop_tree() {
  local pid="$1" kids k
  kids="$(children_of "$pid")"
  # shellcheck disable=SC2086
  kill -TERM "$pid" $kids 2>/dev/null || true
  wait_gone "$pid"
  for k in $kids; do
    case "$(ppid_of "$k" 2>/dev/null)" in
      "$pid" | 1) wait_gone "$k" ;;
    esac
  done
}

stop_dovecot() {
  local pid
  if pid="$(dovecot_pid)"; then stop_tree "$pid"; fi
  rm -f "$DC_BASE/master.pid"
}

start_postfix() {
  postfix_pid >/dev/null && return 0
  trim_log "$PF_LOG"
  rm -f "$PF_QUEUE/pid/master.pid"
  # After the first start the queue folders exist: skip the slow integrity check.
  [ -d "$PF_QUEUE/maildrop" ] && [ -d "$PF_QUEUE/public" ] && touch "$PF_QUEUE/quick-start"
  if ! detached postfix -c "$PF_ETC" start >>"$PF_LOG" 2>&1; then
    show_logs
    die "Postfix failed to start (config: $PF_ETC)"
  fi
}

stop_postfix() {
  local pid
  if pid="$(postfix_pid)"; then stop_tree "$pid"; fi
  rm -f "$PF_QUEUE/pid/master.pid" "$PF_QUEUE/quick-start"
}

wait_or_die() {
  local missing
  if ! missing="$(wait_ports "$@")"; then
    show_logs
    die "ports $missing on $HOST did not answer within ${START_TIMEOUT_S}s"
  fi
}

# The lock is held on fd 9; the daemons must never inherit it (they would hold it forever), so
# every command that may leave a process behind runs with 9>&-.
lock() {
  mkdir -p "$S"
  chmod 0755 "$S"
  exec 9>"$S/.lock"
  flock -w 300 9 || die "timed out waiting for the lock $S/.lock"
}

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (Postfix and Dovecot run as root with their own users)"
}

cmd_start() {
  if postfix_pid >/dev/null && dovecot_pid >/dev/null && [ -f "$CA_PEM" ] &&
    wait_ports "${POSTFIX_PORTS[@]}" "${DOVECOT_PORTS[@]}" >/dev/null 2>&1 &&
    [ "$(id -u)" != 0 ]; then
    return 0 # someone else (root) runs it; nothing we could change anyway
  fi
  need_root "start"
  lock
  install_packages
  make_certs
  register_config_dir
  write_postfix_config
  write_dovecot_config
  write_dovecot_oauth2_config
  # A changed configuration (a newer version of this script) restarts only what changed.
  if [ "$DOVECOT_CHANGED" = 1 ] && dovecot_pid >/dev/null; then
    say "Dovecot configuration changed: restarting it"
    stop_dovecot
  fi
  if [ "$POSTFIX_CHANGED" = 1 ] && postfix_pid >/dev/null; then
    say "Postfix configuration changed: restarting it"
    stop_postfix
  fi
  # Dovecot first: Postfix delivers to its LMTP socket and authenticates through its auth socket.
  start_dovecot
  start_postfix
  wait_or_die "${DOVECOT_PORTS[@]}" "${POSTFIX_PORTS[@]}"
  [ -S "$LMTP_SOCKET" ] || {
    show_logs
    die "Dovecot's LMTP socket $LMTP_SOCKET is missing"
  }
}

cmd_stop() {
  local purge=0
  [ "${1:-}" = "--purge" ] && purge=1
  [ -d "$S" ] || return 0
  need_root "stop"
  lock
  stop_postfix
  stop_dovecot
  if [ "$purge" = 1 ]; then
    exec 9>&-
    rm -rf "$S"
    say "stopped; removed $S"
  fi
}

cmd_restart_dovecot() {
  need_root "restart-dovecot"
  lock
  [ -f "$DC_CONF" ] || die "the stack was never started (no $DC_CONF)"
  stop_dovecot
  start_dovecot
  wait_or_die "${DOVECOT_PORTS[@]}"
  # Mail that arrived while Dovecot was down waits in Postfix's queue: deliver it now.
  postfix_pid >/dev/null && postqueue -c "$PF_ETC" -f >/dev/null 2>&1 9>&- || true
}

cmd_stop_postfix() {
  need_root "stop-postfix"
  lock
  [ -f "$PF_ETC/main.cf" ] || die "the stack was never started (no $PF_ETC/main.cf)"
  stop_postfix
}

cmd_start_postfix() {
  need_root "start-postfix"
  lock
  [ -f "$PF_ETC/main.cf" ] || die "the stack was never started (no $PF_ETC/main.cf)"
  start_postfix
  wait_or_die "${POSTFIX_PORTS[@]}"
}

cmd_restart_postfix() {
  cmd_stop_postfix
  exec 9>&-
  cmd_start_postfix
}

cmd_status() {
  local ok=0 pid
  if pid="$(postfix_pid)"; then echo "postfix: running (pid $pid)"; else
    echo "postfix: stopped"
    ok=1
  fi
  if pid="$(dovecot_pid)"; then echo "dovecot: running (pid $pid)"; else
    echo "dovecot: stopped"
    ok=1
  fi
  return "$ok"
}

accounts() {
  local d n out=()
  for d in "${DOMAINS[@]}"; do for n in "${NAMES[@]}"; do out+=("$n@$d"); done; done
  echo "${out[*]}"
}

json_list() {
  local first=1 x
  printf '['
  for x in "$@"; do
    [ "$first" = 1 ] || printf ','
    first=0
    printf '"%s"' "$x"
  done
  printf ']'
}

cmd_env() {
  local accts
  accts="$(accounts)"
  if [ "${1:-}" = "--json" ]; then
    # shellcheck disable=SC2086
    printf '{"host":"%s","ca":"%s","spool":"%s","password":"%s","domains":%s,"accounts":%s,' \
      "$HOST" "$CA_PEM" "$SPOOL" "$PASSWORD" "$(json_list "${DOMAINS[@]}")" "$(json_list $accts)"
    printf '"oauth_domain":"%s","oauth_introspect_port":%d,' "$OAUTH_DOMAIN" "$OAUTH_INTROSPECT_PORT"
    printf '"ports":{"smtp":%d,"submission":%d,"smtps":%d,"imap":%d,"imaps":%d,"pop3":%d,"pop3s":%d}}\n' \
      "$SMTP_PORT" "$SUBMISSION_PORT" "$SMTPS_PORT" "$IMAP_PORT" "$IMAPS_PORT" "$POP3_PORT" "$POP3S_PORT"
    return 0
  fi
  cat <<EOF
MAILSTACK_HOST=$HOST
MAILSTACK_CA=$CA_PEM
MAILSTACK_SPOOL=$SPOOL
MAILSTACK_PASSWORD=$PASSWORD
MAILSTACK_DOMAINS="${DOMAINS[*]}"
MAILSTACK_SMTP_PORT=$SMTP_PORT
MAILSTACK_SUBMISSION_PORT=$SUBMISSION_PORT
MAILSTACK_SMTPS_PORT=$SMTPS_PORT
MAILSTACK_IMAP_PORT=$IMAP_PORT
MAILSTACK_IMAPS_PORT=$IMAPS_PORT
MAILSTACK_POP3_PORT=$POP3_PORT
MAILSTACK_POP3S_PORT=$POP3S_PORT
MAILSTACK_ACCOUNTS="$accts"
MAILSTACK_OAUTH_DOMAIN=$OAUTH_DOMAIN
MAILSTACK_OAUTH_INTROSPECT_PORT=$OAUTH_INTROSPECT_PORT
EOF
}

cmd_logs() {
  show_logs "${1:-40}" 2>&1
}

usage() {
  echo "usage: $0 start | stop [--purge] | status | env [--json] | restart-dovecot | restart-postfix |" \
    "stop-postfix | start-postfix | logs [N]" >&2
  exit 2
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status ;;
  env) cmd_env "$@" ;;
  restart-dovecot) cmd_restart_dovecot ;;
  restart-postfix) cmd_restart_postfix ;;
  stop-postfix) cmd_stop_postfix ;;
  start-postfix) cmd_start_postfix ;;
  logs) cmd_logs "$@" ;;
  *) usage ;;
esac
