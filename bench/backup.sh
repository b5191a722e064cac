#!/usr/bin/env bash
# Backup and restore of a big store (issue 12), and the /metrics scrape:
# N messages of about SIZE bytes imported into one account (daemon
# stopped), then with the daemon running: `merpati backup` (time, size),
# `/metrics` scraped 20 times (median and max of curl's time_total);
# then `merpati restore` into an empty data_dir (time).
#
#   bench/backup.sh [messages=100000] [size=2048]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; L=${2:-2048}
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-backup.XXXXXX)
# Not `kill ${PID:-0}`: with PID empty that is kill 0, the whole group.
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
config() { # data dir, http port
cat <<TOML
data_dir = "$1"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:2629"]
[submission]
listen = []
tls_listen = []
[imap]
listen = []
tls_listen = []
[pop3]
listen = []
tls_listen = []
[managesieve]
listen = []
[http]
listen = ["127.0.0.1:$2"]
tls_listen = []
TOML
}
config "$DIR/data" 8089 > "$DIR/merpati.toml"
config "$DIR/restored" 8090 > "$DIR/restored.toml"
python3 - "$DIR/Maildir" "$N" "$L" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
line = "Revenue grew in the fourth quarter; the budget review is on Monday.\n"
for i in range(n):
    head = f"From: s{i}@sender.example\nTo: bench@localhost\nSubject: message {i}\nMessage-ID: <{i}@sender.example>\n\n"
    body = head + line * max(1, (size - len(head)) // len(line))
    open(os.path.join(root, "cur", f"{1700000000 + i}.M{i}P1.bench:2,S"), "w").write(body)
PY
M="$BIN --config $DIR/merpati.toml"
echo secret | $M user add bench@localhost >/dev/null
$M import maildir "$DIR/Maildir" bench@localhost | tail -1
$M serve 2> "$DIR/serve.log" &
PID=$!
for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/2629) 2>/dev/null && break; sleep 0.05; done
timed() { # label, command...
  local label=$1 start end; shift
  start=$(date +%s.%N); "$@" | tail -1; end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v l="$label" 'BEGIN { printf "%-24s %.2f s\n", l, e-s }'
}
timed "backup (daemon running)" $M backup "$DIR/backup"
du -sb "$DIR/data" "$DIR/backup" | awk '{ printf "size: %s %.1f MiB\n", $2, $1/1048576 }'
for _ in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:8089/metrics; done |
  sort -n | awk '{ t[NR] = $1 } END { printf "/metrics scrape: median %.1f ms, max %.1f ms (%d scrapes)\n", t[int((NR+1)/2)]*1000, t[NR]*1000, NR }'
kill $PID; wait $PID 2>/dev/null || true; PID=
timed "restore" "$BIN" --config "$DIR/restored.toml" restore "$DIR/backup"
