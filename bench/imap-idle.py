#!/usr/bin/env python3
"""Concurrent IMAP IDLE benchmark for Merpati (issue 3, "Benchmark").

Starts target/release/merpati (build it first: `cargo build --release`) with
a temporary config on free loopback ports, creates bench@localhost with
MESSAGES messages of ~2 KiB in INBOX, then opens K connections that each
LOGIN, SELECT INBOX and IDLE (one Python process, non-blocking sockets and
`selectors`; sources spread over 127.0.0.2-51 so 10,000 connections never
run short of ephemeral ports). Then it reports the server's memory
(VmRSS/VmHWM from /proc/PID/status) and measures the new-mail notification
latency TRIALS times: one message is delivered by SMTP (or APPEND from
another connection with --via append) and the time from the end of DATA
(the final CRLF.CRLF leaving the client) to the arrival of `* n EXISTS` is
recorded on a sample of idlers spread over the whole set (--sample, default
100; only those sockets are polled, so the client's own per-socket cost
does not inflate the figure); afterwards the other idlers are checked to
have been told too (their arrival times are upper bounds).

    bench/imap-idle.py --connections 1000
    bench/imap-idle.py --connections 10000
    bench/imap-idle.py --connections 1000 --messages 10000
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import selectors

from benchlib import BIN, cpu_seconds, free_port, proc_status, uptime, write_config

USER = "bench@localhost"
PASSWORD = "bench-secret"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def kib(s):
    return int(s.split()[0])


def mem_line(pid, label):
    st = proc_status(pid)
    print(f"{label}: VmRSS {kib(st['VmRSS']) / 1024:.1f} MiB (anon {kib(st['RssAnon']) / 1024:.1f}), "
          f"VmHWM {kib(st['VmHWM']) / 1024:.1f} MiB, threads {st['Threads']}", flush=True)
    return kib(st["VmRSS"])


def message(i):
    head = (f"From: Sender <sender@example.org>\r\nTo: <{USER}>\r\n"
            f"Subject: idle benchmark {i}\r\nMessage-ID: <idle.{i}.{time.time()}@example.org>\r\n"
            "Date: Mon, 3 Nov 2025 10:00:00 +0000\r\n\r\n")
    line = "the quick brown fox jumps over the lazy dog, again and again\r\n"
    return (head + line * ((2048 - len(head)) // len(line))).encode()


def recv_until(sock, marker, buf=b""):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def fill(port, n):
    """APPENDs n messages on one connection, pipelined in windows of 100."""
    s = socket.create_connection(("127.0.0.1", port))
    recv_until(s, b"\r\n")
    s.sendall(f'l LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    recv_until(s, b"l OK")
    i = 0
    while i < n:
        batch = min(100, n - i)
        data = b""
        for j in range(batch):
            m = message(i + j)
            data += b"a%d APPEND INBOX {%d+}\r\n" % (i + j, len(m)) + m + b"\r\n"
        s.sendall(data)
        recv_until(s, b"a%d OK" % (i + batch - 1))
        i += batch
    s.sendall(b"z LOGOUT\r\n")
    s.close()


class Conn:
    __slots__ = ("i", "sock", "buf", "idling", "got")

    def __init__(self, i):
        self.i = i
        self.sock = None
        self.buf = b""
        self.idling = False
        self.got = None


def deliver_smtp(port, i, times):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = recv_until(s, b"\r\n")
    for cmd, code in ((b"EHLO bench.example.org\r\n", b"250 "),
                      (b"MAIL FROM:<sender@example.org>\r\n", b"250 "),
                      (f"RCPT TO:<{USER}>\r\n".encode(), b"250 "),
                      (b"DATA\r\n", b"354 ")):
        s.sendall(cmd)
        buf = recv_until(s, code, b"")
    body = message(100000 + i).replace(b"\r\n.", b"\r\n..")
    times["t0"] = time.perf_counter()
    s.sendall(body + b".\r\n")
    buf = recv_until(s, b"\r\n")
    times["accepted"] = time.perf_counter()
    if not buf.startswith(b"250"):
        times["error"] = buf
    s.sendall(b"QUIT\r\n")
    s.close()


def deliver_append(port, i, times, sock_holder):
    s = sock_holder.get("sock")
    if s is None:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv_until(s, b"\r\n")
        s.sendall(f'l LOGIN {USER} "{PASSWORD}"\r\n'.encode())
        recv_until(s, b"l OK")
        sock_holder["sock"] = s
    m = message(100000 + i)
    times["t0"] = time.perf_counter()
    s.sendall(b"x%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n")
    recv_until(s, b"x%d OK" % i)
    times["accepted"] = time.perf_counter()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", "-k", type=int, default=1000)
    ap.add_argument("--messages", "-m", type=int, default=100, help="messages in INBOX before the idlers log in")
    ap.add_argument("--sample", type=int, default=100, help="idlers timed per trial (0 = all)")
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--via", choices=("smtp", "append"), default="smtp")
    ap.add_argument("--setup-concurrency", type=int, default=8,
                    help="connections logging in at once (each LOGIN is an argon2 hash)")
    ap.add_argument("--addrs", type=int, default=50, help="source addresses 127.0.0.2..")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: run `cargo build --release` first")
    k = args.connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = k + 1000
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit(f"fd hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the server

    dirname = tempfile.mkdtemp(prefix="merpati-imap-idle.")
    imap_port, smtp_port = free_port(), free_port()
    config = write_config(dirname, imap_port, smtp_port, k + 100, k + 100)
    subprocess.run([BIN, "--config", config, "user", "add", USER],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    log = open(os.path.join(dirname, "serve.log"), "wb")
    proc = subprocess.Popen([BIN, "--config", config, "serve"], stdout=log, stderr=log)
    pid = proc.pid
    conns = []
    sel = selectors.DefaultSelector()
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", imap_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"# merpati pid {pid}, data {dirname}; {k} idlers, INBOX of {args.messages} messages, "
              f"notification via {args.via}")
        print(f"# load before: {uptime()}")
        if args.messages:
            t = time.perf_counter()
            fill(imap_port, args.messages)
            print(f"# filled INBOX in {time.perf_counter() - t:.1f} s")
        time.sleep(1)
        base = mem_line(pid, "server at rest (1 past session)")

        # --- K connections: LOGIN, SELECT INBOX, IDLE (pipelined) ---
        setup = (f'a LOGIN {USER} "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n').encode()
        t_setup = time.perf_counter()
        cpu0 = cpu_seconds(pid)
        pending = done = nxt = 0
        last_report = t_setup
        while done < k:
            while pending < args.setup_concurrency and nxt < k:
                c = Conn(nxt)
                s = socket.socket()
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((f"127.0.0.{2 + nxt % args.addrs}", 0))
                s.connect(("127.0.0.1", imap_port))
                s.setblocking(False)
                s.sendall(setup)
                c.sock = s
                conns.append(c)
                sel.register(s, selectors.EVENT_READ, c)
                pending += 1
                nxt += 1
            for key, _ in sel.select(timeout=30):
                c = key.data
                data = c.sock.recv(65536)
                if not data:
                    sys.exit(f"connection {c.i} closed during setup: {c.buf[-300:]!r}")
                c.buf += data
                if b"\r\n+ " in c.buf or c.buf.startswith(b"+ "):
                    if b"\r\na OK" not in c.buf or b"\r\nb OK" not in c.buf:
                        sys.exit(f"connection {c.i} setup failed: {c.buf[-500:]!r}")
                    c.buf = b""
                    c.idling = True
                    sel.unregister(c.sock)
                    pending -= 1
                    done += 1
            now = time.perf_counter()
            if now - last_report > 30:
                print(f"  ... {done} idling ({done / (now - t_setup):.0f}/s)", flush=True)
                last_report = now
        setup_s = time.perf_counter() - t_setup
        setup_cpu = cpu_seconds(pid) - cpu0
        print(f"{k} connections LOGIN+SELECT+IDLE in {setup_s:.1f} s ({k / setup_s:.0f}/s, "
              f"server CPU {setup_cpu:.1f} s = {setup_cpu / k * 1000:.1f} ms each)")
        time.sleep(2)
        idle_rss = mem_line(pid, f"server with {k} idlers")
        print(f"  => {(idle_rss - base) / k:.1f} KiB per idle session above the rest state")
        print(f"# load while idle: {uptime()}")

        # --- notification latency ---
        if args.sample and args.sample < k:
            step = k / args.sample
            sample = sorted({int(j * step) for j in range(args.sample)} | {k - 1})
        else:
            sample = list(range(k))
        sample_set = set(sample)
        others = [c for c in conns if c.i not in sample_set]
        all_lat, per_trial = [], []
        holder = {}
        for trial in range(args.trials):
            expected = b"* %d EXISTS" % (args.messages + trial + 1)
            for j in sample:
                conns[j].got = None
                sel.register(conns[j].sock, selectors.EVENT_READ, conns[j])
            times = {}
            if args.via == "smtp":
                th = threading.Thread(target=deliver_smtp, args=(smtp_port, trial, times))
            else:
                th = threading.Thread(target=deliver_append, args=(imap_port, trial, times, holder))
            cpu0 = cpu_seconds(pid)
            th.start()
            remaining = len(sample)
            deadline = time.perf_counter() + 60
            while remaining and time.perf_counter() < deadline:
                for key, _ in sel.select(timeout=1):
                    c = key.data
                    t = time.perf_counter()
                    data = c.sock.recv(65536)
                    if not data:
                        sys.exit(f"idler {c.i} closed: {c.buf[-300:]!r}")
                    c.buf += data
                    if c.got is None and expected in c.buf:
                        c.got = t
                        remaining -= 1
                        sel.unregister(c.sock)
            th.join()
            if "error" in times:
                sys.exit(f"delivery failed: {times['error']!r}")
            t0 = times["t0"]
            lat = sorted((conns[j].got - t0) * 1000 for j in sample if conns[j].got is not None)
            for j in sample:
                conns[j].buf = b""
                if conns[j].got is None:
                    sel.unregister(conns[j].sock)
            # The rest: everybody must have been told (times are upper bounds).
            t_rest = time.perf_counter()
            told = 0
            for c in others:
                sel.register(c.sock, selectors.EVENT_READ, c)
            left = len(others)
            while left and time.perf_counter() - t_rest < 120:
                for key, _ in sel.select(timeout=1):
                    c = key.data
                    data = c.sock.recv(65536)
                    c.buf += data
                    if expected in c.buf:
                        c.buf = b""
                        told += 1
                        left -= 1
                        sel.unregister(c.sock)
            last_all = (time.perf_counter() - t0) * 1000
            for c in others:
                if c.buf:
                    c.buf = b""
                    sel.unregister(c.sock)
            time.sleep(0.5)
            cpu = cpu_seconds(pid) - cpu0
            accepted = (times["accepted"] - t0) * 1000
            print(f"trial {trial + 1}: {args.via} accepted in {accepted:.1f} ms; "
                  f"{len(lat)}/{len(sample)} sampled idlers notified: "
                  f"min {lat[0]:.1f} / median {statistics.median(lat):.1f} / max {lat[-1]:.1f} ms; "
                  f"others {told}/{len(others)} told by {last_all:.0f} ms; server CPU {cpu:.2f} s",
                  flush=True)
            all_lat.extend(lat)
            per_trial.append(statistics.median(lat))
            time.sleep(1)
        all_lat.sort()
        print(f"notification latency over {args.trials} trials x {len(sample)} idlers: "
              f"min {all_lat[0]:.1f} ms, median {statistics.median(all_lat):.1f} ms, "
              f"p90 {all_lat[int(len(all_lat) * 0.9)]:.1f} ms, max {all_lat[-1]:.1f} ms "
              f"(median of trial medians {statistics.median(per_trial):.1f} ms)")
        mem_line(pid, "server after the notifications")
        print(f"# load after: {uptime()}")
    finally:
        for c in conns:
            if c.sock:
                c.sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if args.keep:
            print(f"# kept {dirname}")
        else:
            shutil.rmtree(dirname, ignore_errors=True)


if __name__ == "__main__":
    main()
