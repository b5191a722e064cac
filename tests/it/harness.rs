//! Starts the real `merpati` binary on a free loopback port with a
//! temporary data directory, and speaks to it over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_merpati");
pub const HOSTNAME: &str = "mail.merpati.test";

/// A nameserver address where nothing listens (the discard port).
const UNANSWERED_DNS: &str = "nameservers = [\"127.0.0.1:9\"]\ntimeout = \"300ms\"";

/// What `queue list` shows for mail to example.com under that nameserver.
pub const REMOTE_REASON: &str = "4.4.3 DNS lookup for example.com failed: request timed out";

/// Extra TOML for the server's config, per table.
#[derive(Default, Clone)]
pub struct Builder {
    top: String,
    smtp: String,
    queue: String,
    submission: String,
    /// The whole `[dns]` table; by default a nameserver that never answers,
    /// so mail for other domains is deferred quickly and predictably.
    dns: Option<String>,
    /// A fixed SMTP port instead of a fresh one.
    smtp_port: Option<u16>,
    imap: String,
    pop3: String,
    managesieve: String,
    tail: String,
    /// Size of a tmpfs mounted on the data directory (a disk that fills).
    tmpfs: Option<String>,
    /// The `[mailauth]` keys; by default no keys are made at first start
    /// (most tests do not sign, and RSA key generation costs CPU time).
    mailauth: Option<String>,
    /// `myhostname` instead of [`HOSTNAME`] (a second server in a test).
    hostname: Option<String>,
    /// Environment variables for the daemon (NOTIFY_SOCKET...).
    env: Vec<(String, String)>,
    /// Fixed web ports (plain, TLS) instead of fresh ones: an ACME test
    /// server must know them before the daemon starts.
    http_ports: Option<(u16, u16)>,
}

impl Builder {
    /// Top-level keys (`mynetworks = [...]`).
    pub fn top(mut self, toml: &str) -> Self {
        self.top.push_str(toml);
        self.top.push('\n');
        self
    }
    /// Keys of `[smtp]`.
    pub fn smtp(mut self, toml: &str) -> Self {
        self.smtp.push_str(toml);
        self.smtp.push('\n');
        self
    }
    /// Keys of `[queue]`.
    pub fn queue(mut self, toml: &str) -> Self {
        self.queue.push_str(toml);
        self.queue.push('\n');
        self
    }
    /// Listens for SMTP on this port (from `free_port`).
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = Some(port);
        self
    }
    /// Replaces the `[dns]` table's keys (`nameservers = ["127.0.0.1:P"]`).
    pub fn dns(mut self, toml: &str) -> Self {
        self.dns = Some(toml.to_string());
        self
    }
    /// Keys of `[submission]` (besides the listen addresses).
    pub fn submission(mut self, toml: &str) -> Self {
        self.submission.push_str(toml);
        self.submission.push('\n');
        self
    }
    /// Keys of `[imap]` (besides the listen addresses).
    pub fn imap(mut self, toml: &str) -> Self {
        self.imap.push_str(toml);
        self.imap.push('\n');
        self
    }
    /// Keys of `[pop3]` (besides the listen addresses).
    pub fn pop3(mut self, toml: &str) -> Self {
        self.pop3.push_str(toml);
        self.pop3.push('\n');
        self
    }
    /// Keys of `[managesieve]` (besides the listen address).
    pub fn managesieve(mut self, toml: &str) -> Self {
        self.managesieve.push_str(toml);
        self.managesieve.push('\n');
        self
    }
    /// Puts the data directory on its own tmpfs of this size ("8m"), so a
    /// test can fill the disk. Needs root (mount), as CI runs.
    pub fn tmpfs(mut self, size: &str) -> Self {
        self.tmpfs = Some(size.to_string());
        self
    }
    /// Whole further tables (`[virtual_alias]` ...).
    pub fn tail(mut self, toml: &str) -> Self {
        self.tail.push_str(toml);
        self.tail.push('\n');
        self
    }

    /// Another `myhostname` (two servers of one test must not share one:
    /// each would take the other's HELO and Received: for forgeries).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_string());
        self
    }

    /// An environment variable for the daemon process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Listens for HTTP and HTTPS on these ports (from `free_port`).
    pub fn http_ports(mut self, http: u16, https: u16) -> Self {
        self.http_ports = Some((http, https));
        self
    }

    /// The `[mailauth]` table's keys (replacing `generate_keys = false`).
    pub fn mailauth(mut self, toml: &str) -> Self {
        self.mailauth = Some(toml.to_string());
        self
    }

    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = self.smtp_port.unwrap_or_else(free_port);
        let ports = MailboxPorts {
            submission: free_port(),
            submissions: free_port(),
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
            managesieve: free_port(),
            http: self.http_ports.map_or_else(free_port, |p| p.0),
            https: self.http_ports.map_or_else(free_port, |p| p.1),
        };
        let config_path = dir.path().join("merpati.toml");
        let text = format!(
            "data_dir = \"{data}\"\nmyhostname = \"{hostname}\"\nshutdown_timeout = \"5s\"\n{top}\n[smtp]\nlisten = [\"127.0.0.1:{port}\"]\n{smtp}\n[submission]\nlisten = [\"127.0.0.1:{sub}\"]\ntls_listen = [\"127.0.0.1:{subs}\"]\n{sub_extra}\n[imap]\nlisten = [\"127.0.0.1:{imap}\"]\ntls_listen = [\"127.0.0.1:{imaps}\"]\n{imap_extra}\n[pop3]\nlisten = [\"127.0.0.1:{pop3}\"]\ntls_listen = [\"127.0.0.1:{pop3s}\"]\n{pop3_extra}\n[managesieve]\nlisten = [\"127.0.0.1:{managesieve}\"]\n{managesieve_extra}\n[http]\nlisten = [\"127.0.0.1:{http}\"]\ntls_listen = [\"127.0.0.1:{https}\"]\n[queue]\n{queue}\n[dns]\n{dns}\n[mailauth]\n{mailauth}\n{tail}",
            data = dir.path().join("data").display(),
            hostname = self.hostname.as_deref().unwrap_or(HOSTNAME),
            top = self.top,
            smtp = self.smtp,
            sub = ports.submission,
            subs = ports.submissions,
            sub_extra = self.submission,
            imap = ports.imap,
            imaps = ports.imaps,
            imap_extra = self.imap,
            pop3 = ports.pop3,
            pop3s = ports.pop3s,
            pop3_extra = self.pop3,
            managesieve = ports.managesieve,
            managesieve_extra = self.managesieve,
            http = ports.http,
            https = ports.https,
            queue = self.queue,
            dns = self.dns.as_deref().unwrap_or(UNANSWERED_DNS),
            mailauth = self.mailauth.as_deref().unwrap_or("generate_keys = false"),
            tail = self.tail,
        );
        std::fs::write(&config_path, text).expect("write config");
        let mount = self.tmpfs.map(|size| {
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            let status = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0750"),
                    "tmpfs",
                ])
                .arg(&data)
                .status()
                .expect("run mount");
            assert!(status.success(), "mounting a tmpfs needs root");
            data
        });
        let mut server = Server {
            dir,
            port,
            ports,
            config_path,
            child: None,
            mount,
            env: self.env,
        };
        server.spawn();
        server
    }
}

/// Loopback ports of the mailbox-access listeners.
#[derive(Clone, Copy, Debug)]
pub struct MailboxPorts {
    pub submission: u16,
    pub submissions: u16,
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub managesieve: u16,
    pub http: u16,
    pub https: u16,
}

pub struct Server {
    pub dir: tempfile::TempDir,
    /// The SMTP port.
    pub port: u16,
    pub ports: MailboxPorts,
    pub config_path: PathBuf,
    child: Option<Child>,
    /// A tmpfs to unmount when done.
    mount: Option<PathBuf>,
    env: Vec<(String, String)>,
}

pub fn server() -> Server {
    Builder::default().start()
}

/// A port no other test of this run has been given, below the kernel's
/// ephemeral range (so client sockets never take it meanwhile) and free
/// right now. Kernel-chosen ports (bind to :0) could be handed out again
/// between our probe and the server's bind, which made tests flaky.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 12_000 + (std::process::id() % 400) * 40;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 16_000;
        let port = u16::try_from(base + offset).unwrap_or(12_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Server {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the daemon and waits until it accepts connections.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn merpati");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("merpati exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("merpati did not start listening:\n{}", self.log());
    }

    /// SIGKILL: no chance to clean up, as in a power cut for the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal ("TERM", "HUP", "USR1"...) to the daemon, with
    /// kill(2) itself: a fresh machine may have no kill(1) (procps).
    pub fn signal(&self, signal: &str) {
        let number = match signal {
            "TERM" => libc::SIGTERM,
            "HUP" => libc::SIGHUP,
            "USR1" => libc::SIGUSR1,
            "INT" => libc::SIGINT,
            "KILL" => libc::SIGKILL,
            "STOP" => libc::SIGSTOP,
            "CONT" => libc::SIGCONT,
            other => panic!("unknown signal {other}"),
        };
        if let Some(child) = &self.child
            && let Ok(pid) = libc::pid_t::try_from(child.id())
        {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, number);
            }
        }
    }

    /// Waits for the daemon to exit by itself (after SIGTERM).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return true;
                }
            } else {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs `merpati --config <ours> args...` with `stdin`.
    pub fn cli_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cli(&self.config_path, args, stdin)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_input(args, b"")
    }

    /// Runs the CLI and returns stdout, panicking with stderr on failure.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "merpati {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn add_user(&self, address: &str, password: &str) {
        let out = self.cli_with_input(
            &["user", "add", address],
            format!("{password}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// UIDs in a mailbox, from `merpati mailbox list`.
    pub fn uids(&self, address: &str) -> Vec<u32> {
        self.cli_ok(&["mailbox", "list", address])
            .lines()
            .filter_map(|l| l.split('\t').next()?.parse().ok())
            .collect()
    }

    /// Waits until `address` has at least `count` messages; returns UIDs.
    pub fn wait_for_mail(&self, address: &str, count: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let uids = self.uids(address);
            if uids.len() >= count || Instant::now() > deadline {
                return uids;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn message(&self, address: &str, uid: u32) -> String {
        self.cli_ok(&["mailbox", "cat", address, &uid.to_string()])
    }

    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(mount) = self.mount.take() {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
    }
}

pub fn run_cli(config: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("cli output")
}

/// A plain SMTP client speaking raw lines, as a person with telnet would.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        Smtp::over(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    fn over(stream: TcpStream) -> Smtp {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Smtp {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    /// Connects from another loopback address (`127.0.0.2`: outside a
    /// `mynetworks` of `127.0.0.1/32`, and nameable on a test DNS server).
    pub fn connect_from(port: u16, source: std::net::Ipv4Addr) -> Smtp {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let from = std::net::SocketAddr::from((source, 0));
        socket.bind(&from.into()).expect("bind source address");
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.connect(&to.into()).expect("connect");
        Smtp::over(socket.into())
    }

    /// Reads one whole (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends a command line and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads until the server closes, returning what it said.
    pub fn read_to_close(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        rest
    }

    /// MAIL, RCPT..., DATA, body, final reply; panics on a refusal.
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        assert!(self.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        for rcpt in to {
            let reply = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(reply.starts_with("250"), "RCPT {rcpt}: {reply}");
        }
        assert!(self.cmd("DATA").starts_with("354"));
        self.send_raw(body.as_bytes());
        self.cmd(".")
    }
}

/// The queue ID in "250 2.0.0 Ok: queued as ID".
pub fn queue_id(reply: &str) -> String {
    reply
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

// ---- Helpers for the queue, crash-safety, routing and CLI tests ----

/// Polls `check` every 50 ms until it is true or `timeout` passes; returns
/// whether it became true.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every regular file under `dir`, recursively (temp files included).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

impl Server {
    /// The daemon's process id, while this harness runs one.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `<data_dir>/queue/<queue>` (`incoming`, `deferred`, `hold`...).
    pub fn queue_dir(&self, queue: &str) -> PathBuf {
        self.data_dir().join("queue").join(queue)
    }

    /// Names of the files in one queue directory, sorted (temp files too).
    pub fn queue_files(&self, queue: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.queue_dir(queue))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Which queue directories hold `id` right now.
    pub fn queues_holding(&self, id: &str) -> Vec<&'static str> {
        [
            "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
        ]
        .into_iter()
        .filter(|q| self.queue_dir(q).join(id).exists())
        .collect()
    }

    /// `merpati queue list` output (must succeed).
    pub fn queue_list(&self) -> String {
        self.cli_ok(&["queue", "list"])
    }

    /// Waits (up to 30 s) until `needle` occurs at least `count` times in
    /// the daemon's log.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> bool {
        wait_until(Duration::from_secs(30), || {
            self.log().matches(needle).count() >= count
        })
    }

    /// One whole SMTP session (greeting, EHLO, one message, QUIT); returns
    /// the queue ID. Panics unless the message is queued.
    pub fn submit(&self, from: &str, to: &[&str], body: &str) -> String {
        let mut c = self.connect();
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        let ehlo = c.cmd("EHLO client.test");
        assert!(ehlo.starts_with("250"), "{ehlo}");
        let queued = c.send_mail(from, to, body);
        assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
        c.cmd("QUIT");
        queue_id(&queued)
    }
}

// Real clients run as subprocesses.

/// Runs a Python script given on stdin with `args`.
pub fn python(script: &str, args: &[&str]) -> Output {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is required for this test: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    child.wait_with_output().expect("python3 output")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

/// Runs a script with Debian's interpreter, `/usr/bin/python3`, which has
/// the `python3-*` packages (dkim, nacl) that a `python3` on PATH may lack.
pub fn system_python(script: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("/usr/bin/python3 is required for this test: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("python3 output");
    let _ = writer.join();
    out
}
