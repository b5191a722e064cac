#!/usr/bin/env python3
"""POP3 download benchmark (issue 4): log in, STAT, UIDL, then RETR every
message of a mailbox holding N messages of ~SIZE bytes; prints the time of
the RETR phase. The Dovecot 2.3 reference is 0.228 s for 1,000 x 4 KiB.

    bench/pop3-retr.py [--messages 1000] [--size 4096]

By default it builds nothing and starts target/release/merpati itself with a
temporary data directory (run `cargo build --release` first), fills the
mailbox over SMTP and waits until every message is delivered. With
--pop3-port it measures an already running server instead (the mailbox
must be filled).

The RETR phase is measured three ways:
  poplib     Python's poplib, one RETR at a time (what a simple client does)
  raw        one RETR at a time over a raw socket, read until "\r\n.\r\n"
  pipelined  every RETR written at once (RFC 2449 PIPELINING), then read
"""

import argparse
import os
import poplib
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"merpati exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("merpati did not start")


def make_message(i, size):
    head = (
        f"From: Bench Sender <sender@localhost>\r\nTo: bench@localhost\r\n"
        f"Subject: pop3 bench message {i}\r\n\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog, message %06d.\r\n" % i
    body = []
    total = len(head)
    n = 0
    while total < size:
        # Every tenth line starts with a dot, so stuffing is exercised.
        text = ("." + line) if n % 10 == 9 else line
        body.append(text)
        total += len(text)
        n += 1
    return (head + "".join(body)).encode()


def fill(smtp_port, count, size):
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as s:
        for i in range(count):
            s.sendmail("sender@localhost", ["bench@localhost"], make_message(i, size))


def stat(port, user, password):
    p = poplib.POP3("127.0.0.1", port, timeout=60)
    p.user(user)
    p.pass_(password)
    count, size = p.stat()
    p.quit()
    return count, size


def login_raw(port, user, password):
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = sock.makefile("rb", buffering=1 << 16)
    assert f.readline().startswith(b"+OK")
    sock.sendall(f"USER {user}\r\nPASS {password}\r\n".encode())
    assert f.readline().startswith(b"+OK")
    line = f.readline()
    assert line.startswith(b"+OK"), line
    return sock, f


def read_multi(f):
    """Reads one multi-line response body; returns its octets."""
    n = 0
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line == b".\r\n":
            return n
        n += len(line)


def run_poplib(port, user, password):
    p = poplib.POP3("127.0.0.1", port, timeout=60)
    p.user(user)
    p.pass_(password)
    count, _ = p.stat()
    _, uidls, _ = p.uidl()
    assert len(uidls) == count
    octets = 0
    start = time.perf_counter()
    for i in range(1, count + 1):
        _, _, o = p.retr(i)
        octets += o
    elapsed = time.perf_counter() - start
    p.quit()
    return count, octets, elapsed


def run_raw(port, user, password, pipelined):
    sock, f = login_raw(port, user, password)
    sock.sendall(b"STAT\r\n")
    count = int(f.readline().split()[1])
    sock.sendall(b"UIDL\r\n")
    assert f.readline().startswith(b"+OK")
    read_multi(f)
    octets = 0
    start = time.perf_counter()
    if pipelined:
        sock.sendall(b"".join(b"RETR %d\r\n" % i for i in range(1, count + 1)))
        for _ in range(count):
            assert f.readline().startswith(b"+OK")
            octets += read_multi(f)
    else:
        for i in range(1, count + 1):
            sock.sendall(b"RETR %d\r\n" % i)
            assert f.readline().startswith(b"+OK")
            octets += read_multi(f)
    elapsed = time.perf_counter() - start
    sock.sendall(b"QUIT\r\n")
    f.readline()
    sock.close()
    return count, octets, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "merpati"))
    ap.add_argument("--pop3-port", type=int, help="use a running server (already filled)")
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs per method")
    args = ap.parse_args()

    proc = None
    tmp = None
    port = args.pop3_port
    try:
        if port is None:
            if not os.path.exists(args.bin):
                sys.exit(f"{args.bin} missing: run `cargo build --release` first")
            tmp = tempfile.mkdtemp(prefix="merpati-pop3-bench.")
            smtp_port, port = free_port(), free_port()
            config = os.path.join(tmp, "merpati.toml")
            with open(config, "w") as c:
                c.write(
                    f'data_dir = "{tmp}/data"\nmyhostname = "bench.merpati.test"\n'
                    f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
                    f'[imap]\nlisten = []\ntls_listen = []\n'
                    f'[pop3]\nlisten = ["127.0.0.1:{port}"]\ntls_listen = []\n'
                )
            subprocess.run([args.bin, "--config", config, "user", "add", "bench@localhost"],
                           input=(args.password + "\n").encode(), check=True,
                           stdout=subprocess.DEVNULL)
            log = open(os.path.join(tmp, "serve.log"), "w")
            proc = subprocess.Popen([args.bin, "--config", config, "serve"], stderr=log)
            wait_port(smtp_port, proc)
            wait_port(port, proc)
            t = time.perf_counter()
            fill(smtp_port, args.messages, args.size)
            while stat(port, args.user, args.password)[0] < args.messages:
                time.sleep(0.1)
            print(f"filled {args.messages} messages of ~{args.size} B in {time.perf_counter() - t:.2f} s")

        count, size = stat(port, args.user, args.password)
        print(f"mailbox: {count} messages, {size} octets")
        for name, run in [
            ("poplib", lambda: run_poplib(port, args.user, args.password)),
            ("raw", lambda: run_raw(port, args.user, args.password, False)),
            ("pipelined", lambda: run_raw(port, args.user, args.password, True)),
        ]:
            best = None
            for _ in range(args.rounds):
                n, octets, elapsed = run()
                assert n == count, (n, count)
                best = elapsed if best is None else min(best, elapsed)
            print(f"RETR {name:9}: {count} messages ({octets} octets) in {best:.3f} s "
                  f"({count / best:,.0f} msg/s)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
