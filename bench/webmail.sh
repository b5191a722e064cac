#!/usr/bin/env bash
# Webmail figures (issue 11): a 10,000-message INBOX (2 KiB each, plus one
# 100 KB HTML message) imported into one account; then, over HTTPS on
# loopback with Python's http.client (keep-alive, one connection per
# session): login, the message list (page 1 and page 100, 50 a page),
# opening the HTML message (page + sanitised frame), sending with a 1 MB
# attachment; each the median of several runs with the bytes of the
# response; then the message list with 50 concurrent sessions for 10 s.
#
#   bench/webmail.sh [messages=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -q
BIN=$PWD/target/release/merpati
DIR=$(mktemp -d /tmp/merpati-webmail.XXXXXX)
# Not `kill ${PID:-0}`: with PID empty that is kill 0, the whole group.
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
cat > "$DIR/merpati.toml" <<TOML
data_dir = "$DIR/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:2630"]
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
tls_listen = ["127.0.0.1:8443"]
max_connections_per_client = 200
[anvil]
auth_failure_rate_limit = 0
TOML
python3 - "$DIR/inbox.mbox" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
line = "Revenue grew in the fourth quarter; the budget review is on Monday.\n"
with open(path, "w") as f:
    for i in range(n):
        f.write(f"From s{i}@sender.example Mon Jan  1 00:00:00 2024\n")
        head = f"From: Sender {i} <s{i}@sender.example>\nTo: bench@localhost\nSubject: message {i}\nMessage-ID: <{i}@sender.example>\n\n"
        f.write(head + line * ((2048 - len(head)) // len(line)) + "\n")
    cell = "<td style=\"padding:4px\">Quarterly figure <a href=\"https://example.com/r\">link</a></td>"
    html = "<html><body><h1>Report</h1><table>" + ("<tr>" + cell * 4 + "</tr>\n") * 260 + "</table><img src=\"https://tracker.example/p.gif\"></body></html>"
    f.write("From news@sender.example Mon Jan  1 00:00:00 2024\nFrom: news@sender.example\nTo: bench@localhost\nSubject: html report\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n" + html + "\n")
PY
M="$BIN --config $DIR/merpati.toml"
echo secret-pw | $M user add bench@localhost >/dev/null
$M import mbox "$DIR/inbox.mbox" bench@localhost INBOX | tail -1
$M serve 2> "$DIR/serve.log" &
PID=$!
for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/2630) 2>/dev/null && break; sleep 0.05; done
python3 - 8443 "$N" "$DIR/cookies" <<'PY'
import http.client, re, ssl, statistics, sys, threading, time, uuid
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl._create_unverified_context()

class Session:
    def __init__(self):
        self.c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
        self.cookies = {}
    def req(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        start = time.perf_counter()
        self.c.request(method, path, body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        took = time.perf_counter() - start
        for v in r.headers.get_all("Set-Cookie") or []:
            k, _, rest = v.partition("=")
            self.cookies[k] = rest.split(";")[0]
        return r.status, data, took
    def login(self):
        _, page, _ = self.req("GET", "/login")
        token = re.search(rb'name="csrf" value="([0-9a-f]+)"', page).group(1).decode()
        status, _, took = self.req("POST", "/login", body=f"user=bench@localhost&password=secret-pw&csrf={token}",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303, status
        return took
    def csrf(self):
        _, page, _ = self.req("GET", "/compose")
        return re.search(rb'name="csrf" value="([0-9a-f]+)"', page).group(1).decode()

def median(label, runs, f):
    times, size = [], 0
    for _ in range(runs):
        took, size = f()
        times.append(took)
    print(f"{label:<44} median {statistics.median(times)*1000:8.1f} ms  max {max(times)*1000:8.1f} ms  {size/1024:8.1f} KB")

s = Session()
median("login (Argon2id)", 10, lambda: (Session().login(), 0))
s.login()
def get(path):
    def f():
        status, data, took = s.req("GET", path)
        assert status == 200, (status, path)
        return took, len(data)
    return f
median(f"message list, page 1 of {n} messages", 30, get("/mail?box=INBOX"))
median("message list, page 100", 30, get("/mail?box=INBOX&page=100"))
uid = n + 1
median("open the 100 KB HTML message (page)", 20, get(f"/message?box=INBOX&uid={uid}"))
median("  its sanitised frame", 20, get(f"/message/html?box=INBOX&uid={uid}"))
token = s.csrf()
attachment = bytes((i * 2654435761 >> 13) & 255 for i in range(1 << 20))
def send():
    b = uuid.uuid4().hex
    parts = []
    for k, v in (("csrf", token), ("from", "bench@localhost"), ("to", "bench@localhost"), ("subject", "with 1 MB"), ("body", "Attached."), ("action", "send")):
        parts.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    parts.append(f"--{b}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + attachment + f"\r\n--{b}--\r\n".encode())
    status, data, took = s.req("POST", "/compose", body=b"".join(parts), headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    assert status == 303, (status, data[:300])
    return took, len(data)
median("send with a 1 MB attachment", 5, send)

sessions = [Session() for _ in range(50)]
for x in sessions:
    x.login()
count, stop = [0], time.time() + 10
lock = threading.Lock()
def hammer(x):
    while time.time() < stop:
        status, _, _ = x.req("GET", "/mail?box=INBOX")
        assert status == 200
        with lock:
            count[0] += 1
threads = [threading.Thread(target=hammer, args=(x,)) for x in sessions]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
print(f"message list, 50 concurrent sessions, 10 s: {count[0]/(time.time()-t0):.0f} requests/s (Python threads)")
# The same with curl as the client (no interpreter lock): 50 processes,
# each one session on one keep-alive connection, 200 list requests each.
with open(sys.argv[3], "w") as f:
    for i, x in enumerate(sessions):
        f.write("; ".join(f"{k}={v}" for k, v in x.cookies.items()) + "\n")
PY
urls=$(for _ in $(seq 200); do printf 'url = "https://127.0.0.1:8443/mail?box=INBOX"\noutput = /dev/null\n'; done)
start=$(date +%s.%N)
while read -r cookie; do
  curl -sk --http1.1 -H "Cookie: $cookie" -K <(echo "$urls") &
done < "$DIR/cookies"
wait $(jobs -p | grep -v "^$PID$") 2>/dev/null || true
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "message list, 50 concurrent curl sessions x 200 requests: %.0f requests/s\n", 10000/(e-s) }'
