#!/usr/bin/env bash
# Inbound delivery with a Sieve script (issue 10): N messages of about
# SIZE bytes over S concurrent sessions into one local mailbox, fsync on,
# with the 20-rule filter of bench/sieve-rules.sieve active for the
# recipient ("script") or no script ("none"). The message matches none of
# the filing rules, so every test runs and it lands in INBOX either way.
#
#   bench/sieve-load.sh script [messages=5000] [sessions=20] [size=4096]
#   bench/sieve-load.sh none   ...
#
# Prints accepted and end-to-end delivered msgs/s, as bench/smtp-load.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-script}; N=${2:-5000}; S=${3:-20}; L=${4:-4096}
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-sieve.XXXXXX)
PORT=${PORT:-2626}
cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:$PORT"]
max_connections_per_client = 200
[imap]
listen = []
tls_listen = []
[pop3]
listen = []
tls_listen = []
[submission]
listen = []
tls_listen = []
[managesieve]
listen = []
[http]
listen = []
tls_listen = []
TOML
python3 - "$DIR" "$L" <<'PY'
import sys
d, size = sys.argv[1], int(sys.argv[2])
head = (b"From: Sender <sender@sender.example>\nTo: bench@localhost\n"
        b"Subject: quarterly report\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n"
        b"Message-ID: <bench@sender.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n"
        b"The report is at http://www.reports.example/q4 and http://files.example/x.\n")
line = b"Revenue grew in the fourth quarter; the budget review is on Monday.\n"
open(d + "/message", "wb").write(head + line * max(1, (size - len(head)) // len(line)))
PY
echo secret | "$BIN" --config "$DIR/merpati.toml" user add bench@localhost >/dev/null
if [ "$MODE" = script ]; then
  "$BIN" --config "$DIR/merpati.toml" sieve put bench@localhost rules bench/sieve-rules.sieve >/dev/null
  "$BIN" --config "$DIR/merpati.toml" sieve activate bench@localhost rules >/dev/null
fi
"$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$DIR/serve.log" /tmp/sieve-bench.log; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

start=$(date +%s.%N)
smtp-source -s "$S" -m "$N" -F "$DIR/message" -f sender@sender.example -t bench@localhost 127.0.0.1:$PORT
accepted=$(date +%s.%N)
while [ "$(grep -c 'status=sent' "$DIR/serve.log")" -lt "$N" ]; do sleep 0.05; done
delivered=$(date +%s.%N)
runs=$(grep -c 'sieve: bench: 1 action' "$DIR/serve.log" || true)
awk -v s="$start" -v a="$accepted" -v d="$delivered" -v n="$N" -v m="$MODE" -v r="$runs" 'BEGIN {
  printf "mode: %s (script runs: %d)\nmessages: %d\naccept:   %.2f s  %.0f msgs/s\ndelivery: %.2f s  %.0f msgs/s end to end\n",
    m, r, n, a-s, n/(a-s), d-s, n/(d-s) }'
