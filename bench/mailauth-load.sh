#!/usr/bin/env bash
# Inbound mail-authentication benchmark (issue 8): N DKIM-signed messages of
# SIZE bytes from an outside client over S concurrent sessions, with the
# sender's SPF, DKIM and DMARC (p=reject) records served by a DNS server on
# 127.0.0.1:53 (bench/dns-server.py), into one local mailbox, fsync on.
#
#   bench/mailauth-load.sh on      [messages=5000] [sessions=20] [size=4096]
#   bench/mailauth-load.sh off     ...   # the same with [mailauth] verify = false
#   bench/mailauth-load.sh postfix ...   # Postfix 3.7 + OpenDKIM + OpenDMARC milters
#   bench/mailauth-load.sh postfix-plain ... # the same Postfix without the milters
#
# The client is Postfix's smtp-source sending one pre-signed message file
# (-F); it connects from 127.0.0.1, which both servers are told is *not* in
# mynetworks, so every message is checked as mail from the internet. The
# postfix mode rewrites /etc/postfix/main.cf and master.cf, points
# /etc/resolv.conf at the loopback server for the run (restored on exit),
# and needs root and the Debian packages postfix, opendkim, opendmarc,
# python3-dkim and python3-dnspython. Prints accepted and delivered msgs/s.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-on}; N=${2:-5000}; S=${3:-20}; L=${4:-4096}
PY=/usr/bin/python3
DIR=$(mktemp -d /tmp/merpati-mailauth.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -f "$DIR/resolv.conf.saved" ]; then cp "$DIR/resolv.conf.saved" /etc/resolv.conf; fi
  [ "${MODE%-plain}" = postfix ] && postfix stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

# The sender's domain: a 2048-bit RSA key, SPF for 127.0.0.1, DMARC reject.
openssl genrsa -out "$DIR/dkim.pem" 2048 2>/dev/null
pub=$(openssl rsa -in "$DIR/dkim.pem" -pubout -outform DER 2>/dev/null | base64 -w0)
cat > "$DIR/records" <<REC
signer.example TXT v=spf1 ip4:127.0.0.1 -all
signer.example A 127.0.0.1
bench._domainkey.signer.example TXT v=DKIM1; k=rsa; p=$pub
_dmarc.signer.example TXT v=DMARC1; p=reject; adkim=r; aspf=r
REC
$PY bench/dns-server.py 127.0.0.1 53 "$DIR/records" &
pids+=($!)

# One message of about SIZE bytes, signed once by dkimpy (relaxed/relaxed).
$PY - "$DIR" "$L" <<'PY'
import dkim, sys
d, size = sys.argv[1], int(sys.argv[2])
line = b"The quick brown fox jumps over the lazy dog, signed and sealed.\n"
head = (b"From: Sender <sender@signer.example>\nTo: bench@localhost\n"
        b"Subject: mail-authentication benchmark\nDate: Wed, 02 Dec 2026 12:00:00 +0000\n"
        b"Message-ID: <bench@signer.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n")
body = line * max(1, (size - len(head)) // len(line))
msg = head + body
key = open(d + "/dkim.pem", "rb").read()
sig = dkim.sign(msg.replace(b"\n", b"\r\n"), b"bench", b"signer.example", key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
open(d + "/message", "wb").write(sig.replace(b"\r\n", b"\n") + msg)
PY

for _ in $(seq 100); do $PY -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1); s.sendto(bytes.fromhex('000101000001000000000000037777770000010001'), ('127.0.0.1', 53)); s.recv(512)" 2>/dev/null && break; sleep 0.1; done

count_delivered() { grep -c 'status=sent' "$DIR/serve.log" 2>/dev/null || true; }
if [ "${MODE%-plain}" = postfix ]; then
  PORT=2727
  cp /etc/resolv.conf "$DIR/resolv.conf.saved"
  echo "nameserver 127.0.0.1" > /etc/resolv.conf
  # smtpd runs as postfix: the milter sockets live where it may connect.
  SOCKS=/run/merpati-bench-milters; mkdir -p $SOCKS; chmod 755 $SOCKS
  id bench >/dev/null 2>&1 || useradd -m bench
  MAILDIR=~bench/Maildir/new
  mkdir -p "$MAILDIR"; chown -R bench: ~bench/Maildir
  MILTERS=${MILTERS-"unix:$SOCKS/opendkim.sock, unix:$SOCKS/opendmarc.sock"}; [ "$MODE" = postfix-plain ] && MILTERS=
  cat > /etc/postfix/main.cf <<CF
compatibility_level = 3.6
myhostname = bench-postfix.test
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 10.255.0.0/16
home_mailbox = Maildir/
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_milters = $MILTERS
non_smtpd_milters =
milter_default_action = tempfail
maillog_file = /var/log/postfix-bench.log
CF
  sed -i -E 's/^(smtp|127\.0\.0\.1:2727)( +inet +n +- +)[yn]( .*smtpd)$/127.0.0.1:2727\2n\3/' /etc/postfix/master.cf
  grep -q '^postlog ' /etc/postfix/master.cf || echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >> /etc/postfix/master.cf
  cat > "$DIR/opendkim.conf" <<CF
Mode v
Socket local:$SOCKS/opendkim.sock
Nameservers 127.0.0.1
AuthservID bench-postfix.test
InternalHosts 10.255.0.0/16
Syslog no
UMask 000
CF
  cat > "$DIR/opendmarc.conf" <<CF
Socket local:$SOCKS/opendmarc.sock
AuthservID bench-postfix.test
TrustedAuthservIDs bench-postfix.test
SPFSelfValidate true
RejectFailures true
IgnoreHosts $DIR/ignore
Syslog false
UMask 000
CF
  echo 10.255.0.0/16 > "$DIR/ignore"
  opendkim -f -x "$DIR/opendkim.conf" -P "$DIR/opendkim.pid" & pids+=($!)
  opendmarc -f -c "$DIR/opendmarc.conf" -P "$DIR/opendmarc.pid" & pids+=($!)
  sleep 1
  postfix stop >/dev/null 2>&1 || true
  postfix start >/dev/null
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  before=$(ls "$MAILDIR" | wc -l)
  count_delivered() { echo $(( $(ls "$MAILDIR" | wc -l) - before )); }
else
  VERIFY=true; [ "$MODE" = off ] && VERIFY=false
  cargo build --release -q
  BIN=$PWD/target/release/merpati
  PORT=${PORT:-2626}
  cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
mynetworks = ["10.255.0.0/16"]
[smtp]
listen = ["127.0.0.1:$PORT"]
max_connections_per_client = 200
greet_pause = "0s"
[dns]
nameservers = ["127.0.0.1:53"]
[mailauth]
verify = $VERIFY
generate_keys = false
TOML
  echo secret | "$BIN" --config "$DIR/merpati.toml" user add bench@localhost >/dev/null
  "$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
  pids+=($!); SERVER=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
fi

start=$(date +%s.%N)
smtp-source -s "$S" -m "$N" -F "$DIR/message" -M signer.example -f sender@signer.example -t bench@localhost 127.0.0.1:$PORT
accepted=$(date +%s.%N)
for _ in $(seq 6000); do [ "$(count_delivered)" -ge "$N" ] && break; sleep 0.05; done
delivered=$(date +%s.%N)
got=$(count_delivered)
awk -v s="$start" -v a="$accepted" -v d="$delivered" -v n="$N" -v got="$got" -v m="$MODE" 'BEGIN {
  printf "mode: %s\nmessages: %d (delivered %d)\naccept:   %.2f s  %.0f msgs/s\ndelivery: %.2f s  %.0f msgs/s end to end\n",
    m, n, got, a-s, n/(a-s), d-s, got/(d-s) }'
# One delivered message, to show the verdict the server recorded.
if [ "${MODE%-plain}" = postfix ]; then
  f=$(ls -t "$MAILDIR" | head -1); grep -i -A2 "^Authentication-Results" "$MAILDIR/$f" || true
else
  grep -m1 'dmarc=' "$DIR/serve.log" || true
fi
