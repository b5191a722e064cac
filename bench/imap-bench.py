#!/usr/bin/env python3
"""IMAP benchmark for Merpati (issue 3, "Benchmark").

Starts target/release/merpati (build it first: `cargo build --release`) with
a temporary config on free loopback ports, creates bench@localhost, fills
INBOX with N messages of ~2 KiB by APPEND on one connection (the first
measurement: APPEND rate), then on a fresh connection times, each REPEAT
times (median reported):

    SELECT INBOX
    UID FETCH 1:* (FLAGS)
    FETCH 1:100 BODY.PEEK[]
    SEARCH TEXT <word in ~1% of messages>
    STORE 1:* +FLAGS (\\Seen)      (and -FLAGS to reset, timed too)

The client is a raw socket that reads until the tagged response, so its own
overhead is small (a few ms for the 10,000 FETCH/STORE lines at most).

    bench/imap-bench.py                      # 10,000 messages
    bench/imap-bench.py --messages 100000    # or --big
    bench/imap-bench.py --keep               # keep the data dir, print it
    bench/imap-bench.py --reuse DIR          # skip the fill, reuse a kept dir
    bench/imap-bench.py --hold               # wait for Enter before stopping
                                             # (to attach perf to the server)
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, cpu_seconds, free_port, proc_status, uptime, write_config

USER = "bench@localhost"
PASSWORD = "bench-secret"
NEEDLE = "zanzibar"  # present in every 100th message (uid % 100 == 1)

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or "
    "his from at which but have an they you were her she there been one all "
    "we their has would when if so no will more can out up other about into "
    "time only new some could these two may first then do any like my now "
    "over such our man me even most made after also did many before must "
    "through back years where much your way well down should because each "
    "just those people how too little state good very make world still own "
    "see men work long get here between both life being under never day same "
    "another know while last might us great old year off come since against "
    "go came right used take three mailbox server message delivery invoice "
    "meeting schedule project report budget quarterly review attached please"
).split()


def start_server(config, dirname, port):
    log = open(os.path.join(dirname, "serve.log"), "wb")
    proc = subprocess.Popen([BIN, "--config", config, "serve"], stdout=log, stderr=log)
    for _ in range(400):
        if proc.poll() is not None:
            sys.exit(f"server exited: see {dirname}/serve.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    sys.exit("server did not start listening")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Imap:
    """Minimal IMAP client: one command at a time, reads to the tagged line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.n = 0
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            greeting += chunk

    def command(self, text, literal=None):
        """Sends `text` (+ a LITERAL+ literal); returns (elapsed s, response bytes)."""
        self.n += 1
        tag = b"b%05d" % self.n
        data = tag + b" " + text.encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        data += b"\r\n"
        t0 = time.perf_counter()
        self.sock.sendall(data)
        # The server answers one command at a time, so the response ends
        # with the tagged line: stop when the last complete line has our tag.
        chunks = []
        tail = b""
        total = 0
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            chunks.append(chunk)
            total += len(chunk)
            tail = (tail + chunk[-1024:])[-1024:]
            if tail.endswith(b"\r\n"):
                k = tail.rfind(b"\r\n", 0, len(tail) - 2)
                tagged = tail[k + 2:] if k >= 0 else tail
                if tagged.startswith(tag + b" ") and (k >= 0 or total == len(tail)):
                    break
        elapsed = time.perf_counter() - t0
        resp = b"".join(chunks)
        if not tagged.startswith(tag + b" OK"):
            raise RuntimeError(f"{text[:60]!r} failed: {tagged[:200]!r}")
        return elapsed, resp

    def close(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
            self.sock.close()
        except OSError:
            pass


def make_message(i, rng, size=2048):
    """~size octets, CRLF; every 100th message (i % 100 == 0) has NEEDLE."""
    head = (
        f"From: Sender {i % 37} <sender{i % 37}@example.org>\r\n"
        f"To: Bench <{USER}>\r\n"
        f"Subject: Benchmark message {i} {rng.choice(WORDS)} {rng.choice(WORDS)}\r\n"
        f"Date: Mon, 3 Nov 2025 10:{i // 60 % 60:02d}:{i % 60:02d} +0000\r\n"
        f"Message-ID: <bench.{i}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    )
    lines = []
    total = len(head)
    needle_line = rng.randrange(20) if i % 100 == 0 else -1
    n = 0
    while total < size - 80:
        words = [rng.choice(WORDS) for _ in range(12)]
        if n == needle_line:
            words[5] = NEEDLE
        line = " ".join(words)[:76] + "\r\n"
        lines.append(line)
        total += len(line)
        n += 1
    if needle_line >= n:  # message ended before the chosen line
        lines.append(f"see {NEEDLE} below\r\n")
    body = "".join(lines)
    pad = size - len(head) - len(body)
    if pad > 2:
        body += "x" * (pad - 2) + "\r\n"
    return (head + body).encode()


def fmt(xs):
    xs_ms = [x * 1000 for x in xs]
    return (
        f"median {statistics.median(xs_ms):9.2f} ms   "
        f"min {min(xs_ms):9.2f}   max {max(xs_ms):9.2f}   (n={len(xs)})"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", "-n", type=int, default=10000)
    ap.add_argument("--big", action="store_true", help="100,000 messages")
    ap.add_argument("--size", type=int, default=2048, help="message size in octets")
    ap.add_argument("--repeat", "-r", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--reuse", metavar="DIR", help="reuse a kept dir (no fill)")
    ap.add_argument("--hold", action="store_true", help="wait for Enter before the measurements")
    args = ap.parse_args()
    if args.big:
        args.messages = 100000
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: run `cargo build --release` first")

    imap_port, smtp_port = free_port(), free_port()
    if args.reuse:
        dirname = os.path.abspath(args.reuse)
        config = write_config(dirname, imap_port, smtp_port, 10000, 20)
    else:
        dirname = tempfile.mkdtemp(prefix="merpati-imap-bench.")
        config = write_config(dirname, imap_port, smtp_port, 10000, 20)
        subprocess.run([BIN, "--config", config, "user", "add", USER],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    proc = start_server(config, dirname, imap_port)
    print(f"# merpati {BIN}, pid {proc.pid}, data {dirname}")
    print(f"# load before: {uptime()}")
    try:
        c = Imap(imap_port)
        c.command(f'LOGIN {USER} "{PASSWORD}"')
        n = args.messages
        if not args.reuse:
            rng = random.Random(42)
            msgs = [make_message(i, rng, args.size) for i in range(min(n, 1000))]
            cpu0 = cpu_seconds(proc.pid)
            times = []
            t0 = time.perf_counter()
            for i in range(n):
                msg = msgs[i % len(msgs)] if i >= len(msgs) else msgs[i]
                if i >= len(msgs):
                    # Keep messages distinct; the needle stays at i % 100 == 0.
                    msg = msg.replace(b"Benchmark message %d " % (i % len(msgs)),
                                      b"Benchmark message %d " % i, 1)
                dt, _ = c.command("APPEND INBOX", literal=msg)
                times.append(dt)
                if (i + 1) % 10000 == 0 and n > 10000:
                    el = time.perf_counter() - t0
                    print(f"  ... {i + 1} appended, {(i + 1) / el:.0f}/s overall, "
                          f"last 10k median {statistics.median(times[-10000:]) * 1000:.2f} ms",
                          flush=True)
            total = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            print(f"APPEND x{n} ({args.size} B, one connection, sequential): "
                  f"{total:.1f} s = {n / total:.0f} msgs/s; per APPEND {fmt(times)}; "
                  f"p99 {sorted(times)[int(n * 0.99)] * 1000:.2f} ms; server CPU {cpu:.1f} s")
            print(f"  first 1000 median {statistics.median(times[:1000]) * 1000:.2f} ms, "
                  f"last 1000 median {statistics.median(times[-1000:]) * 1000:.2f} ms")
        c.close()
        st = proc_status(proc.pid)
        print(f"# server RSS after fill: {st['VmRSS']} (peak {st['VmHWM']}), threads {st['Threads']}")
        if args.hold:
            input(f"server pid {proc.pid}; press Enter to measure ")

        c = Imap(imap_port)
        c.command(f'LOGIN {USER} "{PASSWORD}"')
        results = {}

        def measure(name, text, check=None):
            xs = []
            cpu0 = cpu_seconds(proc.pid)
            for _ in range(args.repeat):
                dt, resp = c.command(text)
                xs.append(dt)
            cpu = cpu_seconds(proc.pid) - cpu0
            if check:
                check(resp)
            results[name] = xs
            print(f"{name:28s} {fmt(xs)}   server CPU/op {cpu / args.repeat * 1000:.0f} ms",
                  flush=True)
            return resp

        def check_select(resp):
            assert b"* %d EXISTS" % n in resp, resp[:500]

        def check_flags(resp):
            assert resp.count(b" FETCH (") == n, resp.count(b" FETCH (")

        def check_body(resp):
            assert resp.count(b" FETCH (") == min(100, n)

        def check_search(resp):
            line = next(l for l in resp.split(b"\r\n") if l.startswith(b"* SEARCH"))
            hits = len(line.split()) - 2
            expected = (n + 99) // 100
            assert hits == expected, (hits, expected)
            print(f"{'':28s} ({hits} hits for {NEEDLE!r})")

        measure("SELECT INBOX", "SELECT INBOX", check_select)
        measure("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)", check_flags)
        measure("FETCH 1:100 BODY.PEEK[]", "FETCH 1:100 BODY.PEEK[]", check_body)
        measure(f"SEARCH TEXT {NEEDLE}", f"SEARCH TEXT {NEEDLE}", check_search)
        plus, minus = [], []
        cpu0 = cpu_seconds(proc.pid)
        for _ in range(args.repeat):
            dt, resp = c.command("STORE 1:* +FLAGS (\\Seen)")
            assert resp.count(b" FETCH (") == n
            plus.append(dt)
            dt, _ = c.command("STORE 1:* -FLAGS (\\Seen)")
            minus.append(dt)
        cpu = cpu_seconds(proc.pid) - cpu0
        label_plus, label_minus = "STORE 1:* +FLAGS (\\Seen)", "STORE 1:* -FLAGS (\\Seen)"
        print(f"{label_plus:28s} {fmt(plus)}")
        print(f"{label_minus:28s} {fmt(minus)}   server CPU/pair {cpu / args.repeat * 1000:.0f} ms")
        c.close()
        st = proc_status(proc.pid)
        print(f"# server RSS at end: {st['VmRSS']} (peak {st['VmHWM']}), threads {st['Threads']}")
        du = subprocess.run(["du", "-sh", os.path.join(dirname, "data")], capture_output=True, text=True).stdout.split()[0]
        print(f"# data dir size: {du}")
        print(f"# load after: {uptime()}")
    finally:
        stop_server(proc)
        if args.keep or args.reuse:
            print(f"# kept {dirname}")
        else:
            shutil.rmtree(dirname, ignore_errors=True)


if __name__ == "__main__":
    main()
