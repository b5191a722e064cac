#!/usr/bin/env bash
# SMTP load benchmark: N messages of SIZE bytes over S concurrent sessions
# into one local mailbox, fsync on (always). Uses Postfix's smtp-source
# (Debian package `postfix`) as the client, the standard tool for this.
#
#   bench/smtp-load.sh [messages=5000] [sessions=20] [size=4096]
#
# Prints accepted msgs/s (smtp-source wall time) and end-to-end delivered
# msgs/s (until the last message is committed to the mailbox store).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}; S=${2:-20}; L=${3:-4096}
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-bench.XXXXXX)
PORT=${PORT:-2626}
cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:$PORT"]
max_connections_per_client = 200
TOML
echo secret | "$BIN" --config "$DIR/merpati.toml" user add bench@localhost >/dev/null
"$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

start=$(date +%s.%N)
smtp-source -s "$S" -l "$L" -m "$N" -f sender@localhost -t bench@localhost 127.0.0.1:$PORT
accepted=$(date +%s.%N)
while [ "$(grep -c 'status=sent' "$DIR/serve.log")" -lt "$N" ]; do sleep 0.05; done
delivered=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
awk -v s="$start" -v a="$accepted" -v d="$delivered" -v n="$N" -v rss="$rss" 'BEGIN {
  printf "messages: %d\naccept:   %.2f s  %.0f msgs/s\ndelivery: %.2f s  %.0f msgs/s end to end\npeak RSS: %.1f MiB\n",
    n, a-s, n/(a-s), d-s, n/(d-s), rss/1024 }'
