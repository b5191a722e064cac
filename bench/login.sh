#!/usr/bin/env bash
# Login cost (issue 15): IMAP connect + LOGIN + LOGOUT and POP3 connect +
# USER + PASS + QUIT, 50 times each, with the verified-credentials cache
# on (the default) and off (`[auth] cache_ttl = "0s"`), one daemon each.
#
#   bench/login.sh [rounds=50]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-50}
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-login.XXXXXX)
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
run() { # label, cache_ttl
  rm -rf "$DIR/data"
  cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:2631"]
[submission]
listen = []
tls_listen = []
[imap]
listen = ["127.0.0.1:2143"]
tls_listen = []
[pop3]
listen = ["127.0.0.1:2110"]
tls_listen = []
[managesieve]
listen = []
[http]
listen = []
tls_listen = []
[auth]
cache_ttl = "$2"
TOML
  echo secret-pw | "$BIN" --config "$DIR/merpati.toml" user add bench@localhost >/dev/null
  "$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
  PID=$!
  for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/2631) 2>/dev/null && break; sleep 0.05; done
  python3 - "$1" "$R" <<'PY'
import imaplib, poplib, statistics, sys, time
label, rounds = sys.argv[1], int(sys.argv[2])
def timed(f):
    out = []
    for _ in range(rounds):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return out
def imap():
    c = imaplib.IMAP4("127.0.0.1", 2143); c.login("bench@localhost", "secret-pw"); c.logout()
def pop():
    c = poplib.POP3("127.0.0.1", 2110); c.user("bench@localhost"); c.pass_("secret-pw"); c.quit()
for name, f in (("IMAP connect+LOGIN+LOGOUT", imap), ("POP3 connect+USER+PASS+QUIT", pop)):
    t = timed(f)
    print(f"{label:<12} {name:<28} first {t[0]*1000:6.1f} ms  median {statistics.median(t)*1000:6.1f} ms  max {max(t)*1000:6.1f} ms")
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}
run "cache on" 1h
run "cache off" 0s
