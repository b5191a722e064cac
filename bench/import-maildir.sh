#!/usr/bin/env bash
# Maildir import rate (issue 12): N messages of about SIZE bytes in one
# Maildir (cur/, with flags), imported by `merpati import maildir` into a
# fresh account, once with the daemon stopped (the store opened by the
# CLI) and once through the running daemon (the control socket); then a
# second run that finds everything imported already. Where Dovecot is
# installed (dovecot-core), the same Maildir is then imported by
# `doveadm import` into a private Dovecot's Maildir, side by side, with
# its default mail_fsync (optimized) and with mail_fsync = always.
#
#   bench/import-maildir.sh [messages=10000] [size=4096]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; L=${2:-4096}
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-import.XXXXXX)
# Not `kill ${PID:-0}`: with PID empty that is kill 0, the whole group.
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; [ -f "$DIR/dovecot.conf" ] && doveadm -c "$DIR/dovecot.conf" stop 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:2628"]
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
listen = []
tls_listen = []
TOML
python3 - "$DIR/Maildir" "$N" "$L" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
line = "Revenue grew in the fourth quarter; the budget review is on Monday.\n"
for i in range(n):
    head = f"From: s{i}@sender.example\nTo: bench@localhost\nSubject: message {i}\nMessage-ID: <{i}@sender.example>\n\n"
    body = head + line * max(1, (size - len(head)) // len(line))
    name = f"{1700000000 + i}.M{i}P1.bench:2,{'S' if i % 2 else ''}"
    open(os.path.join(root, "cur", name), "w").write(body)
PY
run() { # label, address
  local start end
  start=$(date +%s.%N)
  "$BIN" --config "$DIR/merpati.toml" import maildir "$DIR/Maildir" "$2" | tail -1
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$N" -v l="$1" 'BEGIN { printf "%-28s %.2f s  %.0f msgs/s\n", l, e-s, n/(e-s) }'
}
echo secret | "$BIN" --config "$DIR/merpati.toml" user add stopped@localhost >/dev/null
echo secret | "$BIN" --config "$DIR/merpati.toml" user add running@localhost >/dev/null
run "daemon stopped" stopped@localhost
run "again (all skipped)" stopped@localhost
"$BIN" --config "$DIR/merpati.toml" serve 2> "$DIR/serve.log" &
PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/2628) 2>/dev/null && break; sleep 0.05; done
run "through the daemon" running@localhost
du -sh "$DIR/Maildir" "$DIR/data" | sed 's/^/size: /'

if ! command -v doveadm >/dev/null; then
  echo "doveadm: not installed (apt-get install dovecot-core), no side-by-side figure"
  exit 0
fi
# A private Dovecot: no listeners, one static user whose Maildir is
# $DIR/home/Maildir (owned by nobody, as Dovecot will not write as root).
dovecot_run() { # label, mail_fsync
  doveadm -c "$DIR/dovecot.conf" stop 2>/dev/null || true
  rm -rf "$DIR/home" "$DIR/dovecot-run" "$DIR/dovecot-state"
  mkdir -p "$DIR/home" && chown nobody:nogroup "$DIR/home" && chmod 755 "$DIR"
  cat > "$DIR/dovecot.conf" <<CONF
protocols =
base_dir = $DIR/dovecot-run
state_dir = $DIR/dovecot-state
log_path = $DIR/dovecot.log
ssl = no
first_valid_uid = 0
default_internal_user = root
default_login_user = root
mail_fsync = $2
mail_location = maildir:$DIR/home/Maildir
namespace inbox {
  inbox = yes
  separator = .
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DIR/home
}
passdb {
  driver = static
  args = nopassword=y
}
CONF
  dovecot -c "$DIR/dovecot.conf"
  # doveadm writes its index files into the source Maildir too.
  chown -R nobody:nogroup "$DIR/Maildir"
  local start end
  start=$(date +%s.%N)
  doveadm -c "$DIR/dovecot.conf" import -u tester "maildir:$DIR/Maildir" "" all
  end=$(date +%s.%N)
  local got
  got=$(find "$DIR/home/Maildir/cur" "$DIR/home/Maildir/new" -type f | wc -l)
  [ "$got" = "$N" ] || { echo "doveadm imported $got of $N messages"; exit 1; }
  awk -v s="$start" -v e="$end" -v n="$N" -v l="$1" 'BEGIN { printf "%-28s %.2f s  %.0f msgs/s\n", l, e-s, n/(e-s) }'
}
dovecot_run "doveadm import (optimized)" optimized
dovecot_run "doveadm import (always)" always
