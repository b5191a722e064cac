#!/usr/bin/env python3
"""IMAP stress load: CLIENTS sessions stay logged in and, for SECONDS, each
runs a random mix of SELECT, FETCH, STORE, APPEND, EXPUNGE and LIST on one
mailbox of ~MESSAGES messages that they all share (one account, so every
change is seen by the others, as on a shared folder). Prints each
operation's rate and latency (median and 95th percentile).

Runs against any IMAP server: Merpati (started here, release build) or an
already running peer such as Dovecot (--host/--port/--user/--password).

    python3 bench/imap-stress.py                      # Merpati, 10 clients, 30 s
    python3 bench/imap-stress.py --port 14300 --user bench --password pw   # a running server
"""

import argparse
import imaplib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

MESSAGE = (
    "From: Bench <bench@example.org>\r\nTo: user@example.org\r\n"
    "Subject: stress {n}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    + ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 30)
)
OPS = ["SELECT", "FETCH", "FETCH", "FETCH", "STORE", "STORE", "APPEND", "EXPUNGE", "LIST"]


def connect(args):
    c = imaplib.IMAP4(args.host, args.port)
    c.login(args.user, args.password)
    return c


def prefill(args):
    c = connect(args)
    c.select("INBOX")
    typ, data = c.search(None, "ALL")
    have = len(data[0].split()) if data and data[0] else 0
    for n in range(have, args.messages):
        c.append("INBOX", None, None, MESSAGE.format(n=n).encode())
    c.logout()


def client(args, stop, results, lock, seed):
    rnd = random.Random(seed)
    c = connect(args)
    c.select("INBOX")
    mine = {op: [] for op in set(OPS)}
    while not stop.is_set():
        op = rnd.choice(OPS)
        t0 = time.perf_counter()
        if op == "SELECT":
            c.select("INBOX")
        elif op == "FETCH":
            typ, data = c.uid("SEARCH", None, "ALL")
            uids = data[0].split() if data and data[0] else []
            if uids:
                start = rnd.randrange(len(uids))
                chunk = uids[start : start + 20]
                c.uid("FETCH", b",".join(chunk), "(FLAGS BODY.PEEK[HEADER] RFC822.SIZE)")
        elif op == "STORE":
            typ, data = c.uid("SEARCH", None, "ALL")
            uids = data[0].split() if data and data[0] else []
            if uids:
                uid = rnd.choice(uids)
                c.uid("STORE", uid, rnd.choice(["+FLAGS", "-FLAGS"]), "(\\Seen)")
        elif op == "APPEND":
            c.append("INBOX", None, None, MESSAGE.format(n=rnd.randrange(10**9)).encode())
        elif op == "EXPUNGE":
            # Keep the mailbox near its size: remove one message for each
            # one appended.
            typ, data = c.uid("SEARCH", None, "ALL")
            uids = data[0].split() if data and data[0] else []
            if len(uids) > args.messages:
                uid = rnd.choice(uids)
                c.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
                c.uid("EXPUNGE", uid) if "UIDPLUS" in c.capabilities else c.expunge()
        elif op == "LIST":
            c.list()
        mine[op].append(time.perf_counter() - t0)
    c.logout()
    with lock:
        for op, times in mine.items():
            results.setdefault(op, []).extend(times)


def start_merpati(args):
    if not os.path.exists(benchlib.BIN):
        sys.exit(f"build first: cargo build --release ({benchlib.BIN})")
    tmp = tempfile.mkdtemp(prefix="merpati-stress-")
    args.port = benchlib.free_port()
    smtp = benchlib.free_port()
    config = benchlib.write_config(tmp, args.port, smtp, 1000, 200)
    run = lambda *a, **k: subprocess.run([benchlib.BIN, "--config", config, *a], check=True, **k)  # noqa: E731
    run("user", "add", "bench@localhost", input=b"pw\n", stdout=subprocess.DEVNULL)
    proc = subprocess.Popen(
        [benchlib.BIN, "--config", config, "serve"],
        stderr=open(os.path.join(tmp, "serve.log"), "w"),
    )
    for _ in range(200):
        try:
            imaplib.IMAP4("127.0.0.1", args.port).logout()
            break
        except OSError:
            time.sleep(0.05)
    args.host, args.user, args.password = "127.0.0.1", "bench@localhost", "pw"
    return proc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="a running server (else Merpati is started)")
    p.add_argument("--user", default="bench")
    p.add_argument("--password", default="pw")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--label", default="")
    args = p.parse_args()
    proc = start_merpati(args) if args.port == 0 else None
    try:
        prefill(args)
        stop, lock, results = threading.Event(), threading.Lock(), {}
        threads = [
            threading.Thread(target=client, args=(args, stop, results, lock, i))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        label = args.label or ("merpati" if proc else f"{args.host}:{args.port}")
        print(f"# {label}: {args.clients} clients, {args.seconds:.0f} s, ~{args.messages} messages")
        print(f"{'op':8} {'ops/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
        for op in sorted(results):
            times = sorted(results[op])
            if not times:
                continue
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(
                f"{op:8} {len(times) / args.seconds:8.1f} "
                f"{statistics.median(times) * 1000:8.1f} {p95 * 1000:8.1f}"
            )
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
