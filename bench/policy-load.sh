#!/usr/bin/env bash
# Inbound anti-spam policy benchmark (issue 9): N messages of SIZE bytes
# from an outside client over S concurrent sessions into one local mailbox,
# fsync on, with the whole policy on or off, and Postfix with postscreen +
# reject_rbl_client + header_checks/body_checks on the same machine. DNS
# lists are served by bench/dns-server.py on 127.0.0.1:53 (nothing listed,
# so every lookup is made and every message delivered).
#
#   bench/policy-load.sh on       [messages=5000] [sessions=20] [size=4096]
#   bench/policy-load.sh off      ...  # restrictions at Postfix's defaults only
#   bench/policy-load.sh postfix  ...  # Postfix 3.7: postscreen (DNSBL), restrictions, checks
#   bench/policy-load.sh postfix-plain ... # the same Postfix with none of it
#
# "on" is: smtpd_client/helo/sender restrictions with reject_rbl_client and
# reject_unknown_sender_domain, postscreen with a DNSBL site and the
# pregreet wait (300 ms, remembered per address), header_checks and
# body_checks (regexp), the spam filter with a client DNS list, a URI
# blocklist and a trained classifier. Mail authentication is off in every
# mode (bench/mailauth-load.sh measures it). One warm-up message first, so
# both servers' postscreen caches know the client, as a busy server would.
# The postfix modes rewrite /etc/postfix/main.cf and master.cf (saved and
# restored) and /etc/resolv.conf for the run, and need root.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-on}; N=${2:-5000}; S=${3:-20}; L=${4:-4096}
PY=/usr/bin/python3
DIR=$(mktemp -d /tmp/merpati-policy.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -f "$DIR/resolv.conf.saved" ] && cp "$DIR/resolv.conf.saved" /etc/resolv.conf
  if [ -f "$DIR/master.cf.saved" ]; then
    postfix stop >/dev/null 2>&1 || true
    cp "$DIR/master.cf.saved" /etc/postfix/master.cf
    cp "$DIR/main.cf.saved" /etc/postfix/main.cf
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT

cat > "$DIR/records" <<REC
sender.example A 127.0.0.1
sender.example MX 10 sender.example.
mx.sender.example A 127.0.0.1
REC
$PY bench/dns-server.py 127.0.0.1 53 "$DIR/records" &
pids+=($!)
for _ in $(seq 100); do $PY -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1); s.sendto(bytes.fromhex('000101000001000000000000037777770000010001'), ('127.0.0.1', 53)); s.recv(512)" 2>/dev/null && break; sleep 0.1; done

# The message: a plain business note with two links, about SIZE bytes.
$PY - "$DIR" "$L" <<'PY'
import sys
d, size = sys.argv[1], int(sys.argv[2])
head = (b"From: Sender <sender@sender.example>\nTo: bench@localhost\n"
        b"Subject: quarterly report\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n"
        b"Message-ID: <bench@sender.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n"
        b"The report is at http://www.reports.example/q4 and http://files.example/x.\n")
line = b"Revenue grew in the fourth quarter; the budget review is on Monday.\n"
open(d + "/message", "wb").write(head + line * max(1, (size - len(head)) // len(line)))
PY
cat > "$DIR/header_checks" <<'RE'
/^Subject:.*viagra/        REJECT no pills
/^Subject:.*lottery winner/ REJECT no lotteries
/^X-Mailer: .*BulkMailer/  REJECT bulk mail
/^Content-Type:.*\.(exe|scr|pif)/ REJECT executable attachment
RE
cat > "$DIR/body_checks" <<'RE'
/click here to claim your prize/ REJECT prize spam
/^begin [0-7]+ .*\.exe/          REJECT uuencoded executable
RE

send_one() { # $1 port, $2 file
  smtp-source -s 1 -m 1 -F "$2" -M sender.example -f sender@sender.example -t "${3:-bench@localhost}" 127.0.0.1:$1
}

if [ "${MODE%-plain}" = postfix ]; then
  PORT=2727
  cp /etc/resolv.conf "$DIR/resolv.conf.saved"
  echo "nameserver 127.0.0.1" > /etc/resolv.conf
  cp /etc/postfix/main.cf "$DIR/main.cf.saved"; cp /etc/postfix/master.cf "$DIR/master.cf.saved"
  id bench >/dev/null 2>&1 || useradd -m bench
  MAILDIR=~bench/Maildir/new
  mkdir -p "$MAILDIR"; chown -R bench: ~bench/Maildir
  if [ "$MODE" = postfix ]; then
    POLICY="postscreen_dnsbl_sites = zen.bench*2
postscreen_dnsbl_threshold = 2
postscreen_greet_wait = 1s
postscreen_greet_action = enforce
postscreen_dnsbl_action = enforce
smtpd_client_restrictions = reject_rbl_client zen.bench
smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname
smtpd_sender_restrictions = reject_non_fqdn_sender, reject_unknown_sender_domain
header_checks = regexp:$DIR/header_checks
body_checks = regexp:$DIR/body_checks"
    FRONT="127.0.0.1:$PORT inet n - n - 1 postscreen
smtpd pass - - n - - smtpd
dnsblog unix - - n - 0 dnsblog
tlsproxy unix - - n - 0 tlsproxy"
  else
    POLICY=""
    FRONT="127.0.0.1:$PORT inet n - n - - smtpd"
  fi
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
maillog_file = /var/log/postfix-bench.log
$POLICY
CF
  cat > /etc/postfix/master.cf <<CF
$FRONT
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
CF
  postfix stop >/dev/null 2>&1 || true
  postfix start >/dev/null
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  count_delivered() { ls "$MAILDIR" | wc -l; }
  # Postfix's postscreen makes a new client wait postscreen_greet_wait
  # and hangs up on it after a pass ("PASS NEW"): the client comes back.
  send_one $PORT "$DIR/message" || true
  sleep 2
  send_one $PORT "$DIR/message"
  for _ in $(seq 200); do [ "$(count_delivered)" -ge 1 ] && break; sleep 0.05; done
else
  cargo build --release -q
  BIN=$PWD/target/release/merpati
  PORT=${PORT:-2626}
  if [ "$MODE" = on ]; then
    POLICY="[smtp]
listen = [\"127.0.0.1:$PORT\"]
max_connections_per_client = 200
greet_pause = \"300ms\"
[restrictions]
smtpd_client_restrictions = [\"reject_rbl_client zen.bench\"]
smtpd_helo_restrictions = [\"reject_invalid_helo_hostname\", \"reject_non_fqdn_helo_hostname\"]
smtpd_sender_restrictions = [\"reject_non_fqdn_sender\", \"reject_unknown_sender_domain\"]
[postscreen]
postscreen_dnsbl_sites = [\"zen.bench*2\"]
postscreen_dnsbl_threshold = 2
[checks]
header_checks = \"regexp:$DIR/header_checks\"
body_checks = \"regexp:$DIR/body_checks\"
[spam]
enabled = ${SPAM:-true}
${SPAM_DNS-dnsbl_sites = [\"zen.bench*2\"]
uribl_sites = [\"uribl.bench*3\"]}
min_learns = 1"
  else
    POLICY="[smtp]
listen = [\"127.0.0.1:$PORT\"]
max_connections_per_client = 200
greet_pause = \"0s\"
[spam]
enabled = false"
  fi
  cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
mynetworks = ["10.255.0.0/16"]
[dns]
nameservers = ["127.0.0.1:53"]
[mailauth]
verify = false
generate_keys = false
$POLICY
TOML
  for u in bench spamtrap; do echo secret | "$BIN" --config "$DIR/merpati.toml" user add $u@localhost >/dev/null; done
  "$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
  pids+=($!)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  count_delivered() { grep -c 'to=<bench@localhost>.*status=sent' "$DIR/serve.log" 2>/dev/null || true; }
  if [ "$MODE" = on ]; then
    # Train the classifier: one spam (to a trap account) and one ham.
    $PY - "$DIR" <<'PY'
import sys
d = sys.argv[1]
open(d + "/spam", "w").write("From: <x@sender.example>\nTo: spamtrap@localhost\nSubject: You are a lottery\n"
    "Date: Thu, 03 Dec 2026 12:00:00 +0000\nMessage-ID: <spam1@sender.example>\n\n"
    "Cheap pills casino prize money, limited offer, act now.\n")
PY
    send_one $PORT "$DIR/spam" spamtrap@localhost
    for _ in $(seq 200); do grep -q 'to=<spamtrap@localhost>.*status=sent' "$DIR/serve.log" && break; sleep 0.05; done
    "$BIN" --config "$DIR/merpati.toml" spam train --spam spamtrap@localhost INBOX
  fi
  send_one $PORT "$DIR/message"
  for _ in $(seq 200); do [ "$(count_delivered)" -ge 1 ] && break; sleep 0.05; done
  [ "$MODE" = on ] && "$BIN" --config "$DIR/merpati.toml" spam train --ham bench@localhost INBOX
fi

before=$(count_delivered)
start=$(date +%s.%N)
smtp-source -s "$S" -m "$N" -F "$DIR/message" -M sender.example -f sender@sender.example -t bench@localhost 127.0.0.1:$PORT
accepted=$(date +%s.%N)
for _ in $(seq 6000); do [ $(( $(count_delivered) - before )) -ge "$N" ] && break; sleep 0.05; done
delivered=$(date +%s.%N)
got=$(( $(count_delivered) - before ))
awk -v s="$start" -v a="$accepted" -v d="$delivered" -v n="$N" -v got="$got" -v m="$MODE" 'BEGIN {
  printf "mode: %s\nmessages: %d (delivered %d)\naccept:   %.2f s  %.0f msgs/s\ndelivery: %.2f s  %.0f msgs/s end to end\n",
    m, n, got, a-s, n/(a-s), d-s, got/(d-s) }'
if [ "$MODE" = on ]; then
  grep -m1 'spam: from=<sender@sender.example>' "$DIR/serve.log" | sed 's/.*spam: //' || true
  grep -c 'PASS OLD' "$DIR/serve.log" | sed 's/^/postscreen PASS OLD: /' || true
fi
