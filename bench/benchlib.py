"""What the IMAP benchmarks share: the binary, free ports, a config on
loopback, and the server process's memory and CPU from /proc."""

import os
import socket
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "merpati")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_config(dirname, imap_port, smtp_port, max_conn, per_client):
    """merpati.toml in `dirname`: SMTP and plaintext IMAP on loopback, the
    rest off; returns its path."""
    path = os.path.join(dirname, "merpati.toml")
    with open(path, "w") as f:
        f.write(f"""data_dir = "{dirname}/data"
myhostname = "bench.merpati.test"
[smtp]
listen = ["127.0.0.1:{smtp_port}"]
max_connections_per_client = 200
[submission]
listen = []
tls_listen = []
[imap]
listen = ["127.0.0.1:{imap_port}"]
tls_listen = []
plaintext_auth_on_loopback = true
max_connections = {max_conn}
max_connections_per_client = {per_client}
[pop3]
listen = []
tls_listen = []
[managesieve]
listen = []
[http]
listen = []
tls_listen = []
""")
    return path


def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
