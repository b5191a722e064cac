#!/usr/bin/env bash
# Outbound relay benchmark: N messages of SIZE bytes submitted over SMTP
# and relayed to Postfix's smtp-sink (a discarding SMTP server) across 10
# destination domains; prints relayed msgs/s and the daemon's peak RSS.
#
#   bench/relay-load.sh [messages=5000] [size=4096]
#   bench/relay-load.sh postfix [messages] [size]   # the same through a local Postfix
#
# Needs Debian's postfix package (smtp-source, smtp-sink). For the Postfix
# run, Postfix must be installed and startable (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=merpati
if [ "${1:-}" = postfix ]; then MODE=postfix; shift; fi
N=${1:-5000}; L=${2:-4096}
SINK_PORT=${SINK_PORT:-2699}
PER=$(( N / 10 ))
DIR=$(mktemp -d /tmp/merpati-relay.XXXXXX)
cleanup() { kill ${SINK:-} ${PID:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

smtp-sink -u nobody 127.0.0.1:$SINK_PORT 1000 & SINK=$!
sleep 0.3

send_all() { # port
  local i
  for i in $(seq 0 9); do
    smtp-source -s 2 -l "$L" -m "$PER" -f sender@localhost -t "user@d$i.test" 127.0.0.1:$1 &
  done
  wait $(jobs -p | grep -v "^$SINK\$" | grep -v "^${PID:-x}\$") 2>/dev/null || true
}

if [ $MODE = merpati ]; then
  cargo build --release -q
  BIN=$PWD/target/release/merpati
  PORT=${PORT:-2626}
  {
    echo "data_dir = \"$DIR/data\""
    echo 'myhostname = "bench.merpati.test"'
    echo '[smtp]'
    echo "listen = [\"127.0.0.1:$PORT\"]"
    echo 'max_connections_per_client = 200'
    echo '[submission]'; echo 'listen = []'; echo 'tls_listen = []'
    echo '[imap]'; echo 'listen = []'; echo 'tls_listen = []'
    echo '[pop3]'; echo 'listen = []'; echo 'tls_listen = []'
    echo '[relay]'
    echo 'tls = "none"'
    echo '[relay.transports]'
    for i in $(seq 0 9); do echo "\"d$i.test\" = \"127.0.0.1:$SINK_PORT\""; done
  } > "$DIR/merpati.toml"
  "$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" & PID=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  start=$(date +%s.%N)
  send_all $PORT
  accepted=$(date +%s.%N)
  while [ "$(grep -c 'status=sent' "$DIR/serve.log")" -lt "$N" ]; do sleep 0.05; done
  done_at=$(date +%s.%N)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
else
  for i in $(seq 0 9); do echo "d$i.test smtp:[127.0.0.1]:$SINK_PORT"; done > /etc/postfix/bench_transport
  postmap /etc/postfix/bench_transport
  postconf -e "transport_maps = hash:/etc/postfix/bench_transport" "smtp_tls_security_level = none"
  postfix reload >/dev/null 2>&1 || postfix start
  sleep 1
  start=$(date +%s.%N)
  send_all 2727
  accepted=$(date +%s.%N)
  until postqueue -p | grep -q "Mail queue is empty"; do sleep 0.1; done
  done_at=$(date +%s.%N)
  rss=0
fi
awk -v s="$start" -v a="$accepted" -v d="$done_at" -v n="$N" -v rss="$rss" -v m="$MODE" 'BEGIN {
  printf "%s: %d messages to 10 destinations\naccept:  %.2f s  %.0f msgs/s\nrelayed: %.2f s  %.0f msgs/s end to end\n", m, n, a-s, n/(a-s), d-s, n/(d-s)
  if (rss > 0) printf "peak RSS: %.1f MiB\n", rss/1024 }'
