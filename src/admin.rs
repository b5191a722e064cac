//! The admin commands behind the CLI (Postfix's postqueue, postsuper,
//! sendmail, newaliases; Dovecot's doveadm user). Each works whether the
//! daemon runs or not: queue commands act on the spool files directly,
//! store commands go through the control socket when the daemon holds the
//! store.

use crate::address::Address;
use crate::app;
use crate::config::Config;
use crate::control::{self, ImportItem, StoreOp};
use crate::queue::id::QueueId;
use crate::queue::spool::{QueueName, Spool};
use crate::queue::{self, AdminOp};
use crate::rewrite::{Aliases, Resolver};
use anyhow::{Context, anyhow, bail};
use std::io::{IsTerminal, Write};

/// Runs a store operation via the daemon, or locally when it is stopped.
pub fn run_store_op(config: &Config, op: &StoreOp) -> anyhow::Result<Vec<u8>> {
    let socket = config.run_dir().join(control::SOCKET);
    if let Some(answer) = control::request(&socket, op).context("control socket")? {
        return answer.map_err(|e| anyhow!(e));
    }
    let store = app::open_store(config)?;
    op.execute(store.as_ref()).map_err(|e| anyhow!(e))
}

/// Runs a `merpati spam` operation via the daemon (whose caches must see
/// it), or locally when it is stopped.
pub fn run_spam_op(config: &Config, op: &crate::spam::admin::SpamOp) -> anyhow::Result<Vec<u8>> {
    let socket = config.run_dir().join(control::SOCKET);
    if let Some(answer) =
        control::request_words(&socket, &op.to_words()).context("control socket")?
    {
        return answer.map_err(|e| anyhow!(e));
    }
    let store = app::open_store(config)?;
    let filter = crate::spam::SpamFilter::new(store.clone(), &config.data_dir);
    op.execute(store.as_ref(), &filter, &config.spam)
        .map_err(|e| anyhow!(e))
}

/// Runs a `merpati sieve` operation via the daemon, or locally.
pub fn run_sieve_op(config: &Config, op: &crate::sieve::admin::SieveOp) -> anyhow::Result<Vec<u8>> {
    let socket = config.run_dir().join(control::SOCKET);
    if let Some(answer) =
        control::request_words(&socket, &op.to_words()).context("control socket")?
    {
        return answer.map_err(|e| anyhow!(e));
    }
    let store = app::open_store(config)?;
    op.execute(store.as_ref(), &config.sieve)
        .map_err(|e| anyhow!(e))
}

/// An absolute form of a path the user typed (the daemon's working
/// directory is not theirs).
fn absolute(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(dir).with_context(|| format!("{}", dir.display()))
}

/// `merpati backup DIR`: by the daemon when it runs (it holds the store),
/// else here.
pub fn backup(config: &Config, dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = absolute(dir)?;
    let socket = config.run_dir().join(control::SOCKET);
    let words = crate::backup::backup_words(&dir);
    let summary = match control::request_words(&socket, &words).context("control socket")? {
        Some(answer) => answer.map_err(|e| anyhow!(e))?,
        None => {
            let store = app::open_store(config)?;
            let spool = Spool::open(&config.queue_dir()).context("cannot open the queue")?;
            crate::backup::backup(config, store.as_ref(), &spool, &dir)
                .map_err(|e| anyhow!(e))?
                .into_bytes()
        }
    };
    println!("{}", String::from_utf8_lossy(&summary));
    Ok(())
}

/// `merpati restore DIR`, with the daemon stopped.
pub fn restore(config: &Config, dir: &std::path::Path) -> anyhow::Result<()> {
    let summary = crate::backup::restore(config, &absolute(dir)?).map_err(|e| anyhow!(e))?;
    // The store opens: the copy is whole.
    let store = app::open_store(config)?;
    let accounts = store.accounts()?.len();
    println!(
        "{summary}
{accounts} accounts; start the daemon now"
    );
    Ok(())
}

/// `merpati export ADDRESS DIR`.
pub fn export(config: &Config, address: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = absolute(dir)?;
    let account = account_of(config, address)?;
    let socket = config.run_dir().join(control::SOCKET);
    let words = crate::backup::export_words(&account, &dir);
    let summary = match control::request_words(&socket, &words).context("control socket")? {
        Some(answer) => answer.map_err(|e| anyhow!(e))?,
        None => {
            let store = app::open_store(config)?;
            crate::backup::export(store.as_ref(), &account, &dir)
                .map_err(|e| anyhow!(e))?
                .into_bytes()
        }
    };
    println!("{}", String::from_utf8_lossy(&summary));
    Ok(())
}

/// `merpati import mbox FILE ADDRESS [MAILBOX]`: each message through
/// the daemon (or the store when it is stopped), progress on a terminal,
/// a summary at the end.
pub fn import_mbox(
    config: &Config,
    file: &std::path::Path,
    address: &str,
    mailbox: &str,
) -> anyhow::Result<()> {
    let account = account_of(config, address)?;
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let now = crate::rfc5322::now_unix();
    let messages = crate::import::mbox::split(&data);
    let blank = data.trim_ascii().is_empty();
    // The messages are copies: the file need not stay in memory too.
    drop(data);
    if messages.is_empty() && !blank {
        // Not an mbox, or separators we cannot read: say so rather than
        // report "0 imported" as if the file were empty.
        bail!(
            "{}: no mbox separator line (\"From sender date\") found",
            file.display()
        );
    }
    let ops: Vec<ImportStep> = messages
        .into_iter()
        .map(|m| {
            let mailbox = mailbox.to_string();
            Box::new(move || {
                Ok(ImportItem {
                    mailbox,
                    flags: m.flags,
                    internal_date: m.internal_date.unwrap_or(now),
                    message: m.body,
                    uid: None,
                })
            }) as ImportStep
        })
        .collect();
    import_all(config, &account, &file.display().to_string(), ops)
}

/// `merpati import maildir PATH ADDRESS`: every folder of the tree.
pub fn import_maildir(
    config: &Config,
    root: &std::path::Path,
    address: &str,
) -> anyhow::Result<()> {
    let account = account_of(config, address)?;
    let entries = crate::import::maildir::scan(root)
        .with_context(|| format!("cannot read {}", root.display()))?;
    let ops: Vec<ImportStep> = entries
        .into_iter()
        .map(|e| {
            // One file read at a time, when its turn comes.
            Box::new(move || {
                let message = std::fs::read(&e.path)
                    .with_context(|| format!("cannot read {}", e.path.display()))?;
                Ok(ImportItem {
                    mailbox: e.mailbox,
                    flags: e.flags,
                    internal_date: e.internal_date,
                    // Maildir files often end lines with a bare LF; the store keeps CRLF.
                    message: crate::rfc5322::to_crlf(&message, false),
                    uid: e.uid,
                })
            }) as ImportStep
        })
        .collect();
    import_all(config, &account, &root.display().to_string(), ops)
}

/// One message of an import, made when its turn comes.
type ImportStep = Box<dyn FnOnce() -> anyhow::Result<ImportItem>>;

/// An import batch is sent when it holds this many messages, or before
/// a message would take it past [`IMPORT_BATCH_BYTES`]: one transaction
/// (one fsync) for many messages, and a control request far below its
/// bound (a message bigger than the bytes goes alone).
const IMPORT_BATCH_MESSAGES: usize = 256;
const IMPORT_BATCH_BYTES: usize = 16 << 20;

#[derive(Default)]
struct ImportTally {
    imported: usize,
    skipped: usize,
    failed: usize,
}

fn import_all(
    config: &Config,
    account: &str,
    what: &str,
    ops: Vec<ImportStep>,
) -> anyhow::Result<()> {
    let total = ops.len();
    let terminal = std::io::stderr().is_terminal();
    let mut tally = ImportTally::default();
    let mut sink = ImportSink::new(config, account);
    let mut batch: Vec<(usize, ImportItem)> = Vec::new();
    let mut bytes = 0;
    for (i, make) in ops.into_iter().enumerate() {
        match make() {
            Ok(item) => {
                if !batch.is_empty()
                    && (batch.len() == IMPORT_BATCH_MESSAGES
                        || bytes + item.message.len() > IMPORT_BATCH_BYTES)
                {
                    sink.send(std::mem::take(&mut batch), &mut tally);
                    bytes = 0;
                }
                bytes += item.message.len();
                batch.push((i + 1, item));
            }
            Err(e) => {
                tally.failed += 1;
                eprintln!("message {}: {e}", i + 1);
            }
        }
        if terminal && (i + 1) % 64 == 0 {
            eprint!("\r{}/{total}", i + 1);
        }
    }
    sink.send(batch, &mut tally);
    if terminal {
        eprintln!("\r{total}/{total}");
    }
    let ImportTally {
        imported,
        skipped,
        failed,
    } = tally;
    println!("{what}: {imported} imported, {skipped} already there, {failed} failed (of {total})");
    if failed > 0 {
        bail!("{failed} message(s) could not be imported");
    }
    Ok(())
}

/// Where import batches go: the daemon while it runs, else the store,
/// opened once.
struct ImportSink<'c> {
    config: &'c Config,
    account: String,
    socket: std::path::PathBuf,
    local: Option<std::sync::Arc<dyn crate::store::MailStore>>,
}

impl<'c> ImportSink<'c> {
    fn new(config: &'c Config, account: &str) -> Self {
        ImportSink {
            config,
            account: account.to_string(),
            socket: config.run_dir().join(control::SOCKET),
            local: None,
        }
    }

    /// Sends one batch (numbered messages) and counts what became of each.
    fn send(&mut self, batch: Vec<(usize, ImportItem)>, tally: &mut ImportTally) {
        if batch.is_empty() {
            return;
        }
        let (numbers, messages): (Vec<usize>, Vec<ImportItem>) = batch.into_iter().unzip();
        let op = StoreOp::Import {
            account: self.account.clone(),
            messages,
        };
        let answer = self
            .run(&op)
            .map(|out| String::from_utf8_lossy(&out).into_owned());
        let lines: Vec<String> = match &answer {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        };
        for (k, number) in numbers.iter().enumerate() {
            match (lines.get(k), &answer) {
                (Some(line), _) if line.starts_with("imported") => tally.imported += 1,
                (Some(line), _) if line.starts_with("skipped") => tally.skipped += 1,
                (Some(line), _) => {
                    tally.failed += 1;
                    eprintln!("message {number}: {line}");
                }
                (None, Err(e)) => {
                    tally.failed += 1;
                    eprintln!("message {number}: {e}");
                }
                (None, Ok(_)) => {
                    tally.failed += 1;
                    eprintln!("message {number}: no answer for it");
                }
            }
        }
    }

    fn run(&mut self, op: &StoreOp) -> anyhow::Result<Vec<u8>> {
        if self.local.is_none()
            && let Some(answer) = control::request(&self.socket, op).context("control socket")?
        {
            return answer.map_err(|e| anyhow!(e));
        }
        let store = match &self.local {
            Some(store) => store.clone(),
            None => self.local.insert(app::open_store(self.config)?).clone(),
        };
        op.execute(store.as_ref()).map_err(|e| anyhow!(e))
    }
}

fn resolver(config: &Config) -> Resolver {
    Resolver::new(config, Aliases::default())
}

/// `user@domain` (or a bare name) -> the store's account name.
pub fn account_of(config: &Config, address: &str) -> anyhow::Result<String> {
    let address = Address::parse(address).map_err(|e| anyhow!("{address}: {e}"))?;
    resolver(config)
        .account_name(&address)
        .map_err(|e| anyhow!(e))
}

/// Reads a new password: prompted twice on a terminal, else the first
/// line of stdin (so scripts can pipe it in).
pub fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")?;
        let again = rpassword::prompt_password("Retype new password: ")?;
        if first != again {
            bail!("passwords do not match");
        }
        return non_empty(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    non_empty(line.trim_end_matches(['\r', '\n']).to_string())
}

fn non_empty(password: String) -> anyhow::Result<String> {
    if password.is_empty() {
        bail!("empty password refused");
    }
    Ok(password)
}

pub fn check_config(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let loaded = Config::load_checked(path).and_then(|config| {
        let mut problems = Vec::new();
        if let Err(e) = crate::tls::check_configured(&config) {
            problems.push(crate::config::Problem::new("tls.cert", e.to_string()));
        }
        if let Some(file) = path {
            for p in &mut problems {
                p.file = Some(file.display().to_string());
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    });
    match loaded {
        Ok(config) => {
            let (aliases, problems) = Aliases::load(&config.alias_path())?;
            for p in &problems {
                println!("{}: {p}", config.alias_path().display());
            }
            println!(
                "config OK: myhostname={} mydestination={} aliases={}",
                config.myhostname,
                config.mydestination.join(","),
                aliases.len()
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!("{} problem(s) in the configuration", problems.len())
        }
    }
}

/// `merpati queue list` / `mailq`, in Postfix's layout.
pub fn queue_list(config: &Config) -> anyhow::Result<()> {
    let text = match Spool::open(&config.queue_dir()).and_then(|spool| queue::mailq_text(&spool)) {
        Ok(text) => text,
        // Not the queue's owner: the daemon lists it (Postfix's showq).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let socket = crate::queue::postdrop::socket_path(config);
            match crate::control::exchange(&socket, crate::queue::postdrop::SHOWQ)
                .with_context(|| format!("cannot reach {}", socket.display()))?
            {
                Some(Ok(text)) => String::from_utf8_lossy(&text).into_owned(),
                Some(Err(why)) => bail!("the mail system refused: {why}"),
                None => bail!("cannot read the queue ({e}) and the merpati daemon is not running"),
            }
        }
        Err(e) => return Err(e.into()),
    };
    print!("{text}");
    Ok(())
}

pub fn queue_admin(config: &Config, op: AdminOp, target: &str) -> anyhow::Result<()> {
    let spool = Spool::open(&config.queue_dir())?;
    let only = if target.eq_ignore_ascii_case("ALL") {
        None
    } else {
        Some(QueueId::parse(target).ok_or_else(|| anyhow!("{target}: not a queue ID"))?)
    };
    let socket = config.run_dir().join(control::SOCKET);
    let request = control::QueueRequest {
        op,
        only: only.clone(),
    };
    let done =
        match control::request_words(&socket, &request.to_words()).context("control socket")? {
            Some(answer) => {
                let out = answer.map_err(|e| anyhow!(e))?;
                String::from_utf8_lossy(&out)
                    .lines()
                    .filter_map(QueueId::parse)
                    .collect()
            }
            // No daemon: nothing is being delivered, every file may be moved.
            None => queue::admin(&spool, op, only.as_ref(), &queue::ActiveGuard::Offline)?,
        };
    if let Some(id) = &only
        && done.is_empty()
    {
        match spool.locate(id) {
            Some(QueueName::Active) => {
                bail!("{id}: being delivered right now; try again in a moment")
            }
            Some(q) => bail!("{id}: is in {}, where {op:?} does not apply", q.dir_name()),
            None => bail!("{id}: no such message in the queue"),
        }
    }
    let verb = match op {
        AdminOp::Hold => "placed on hold",
        AdminOp::Release => "released from hold",
        AdminOp::Delete => "deleted",
        AdminOp::Requeue => "requeued",
    };
    for id in &done {
        println!("{id}: {verb}");
    }
    eprintln!("{} message(s) {verb}", done.len());
    if matches!(op, AdminOp::Release | AdminOp::Requeue) {
        app::signal_daemon(config, libc::SIGUSR1);
    }
    Ok(())
}

pub fn queue_flush(config: &Config) -> anyhow::Result<()> {
    let spool = Spool::open(&config.queue_dir())?;
    let n = queue::flush(&spool)?;
    let running = app::signal_daemon(config, libc::SIGUSR1);
    println!(
        "{n} deferred message(s) scheduled for delivery{}",
        if running {
            ""
        } else {
            " (the daemon is not running)"
        }
    );
    Ok(())
}

/// `merpati store check`: the daemon must be stopped (the store is open in
/// one process only, and redb's integrity check needs it to itself).
pub fn store_check(config: &Config) -> anyhow::Result<()> {
    let dir = config.store_dir();
    let mut store = match crate::store::RedbStore::open(&dir) {
        Ok(store) => store,
        Err(crate::store::StoreError::Locked) => {
            bail!("the mail store is in use: stop merpati first (systemctl stop merpati)")
        }
        Err(e @ crate::store::StoreError::Corrupt(_)) => bail!(
            "{}: {e}\nWhat to do: {}",
            dir.display(),
            crate::store::damage::ADVICE
        ),
        Err(e) => bail!("{}: {e}", dir.display()),
    };
    match store.check_integrity() {
        Ok(true) => println!("database: ok"),
        Ok(false) => println!("database: damaged pages found and repaired by redb"),
        Err(e) => bail!(
            "database: damaged beyond repair: {e}\nWhat to do: {}",
            crate::store::damage::ADVICE
        ),
    }
    let report = crate::store::damage::check(&store)?;
    for problem in &report.problems {
        println!("damaged: {problem}");
    }
    println!(
        "{} accounts, {} mailboxes, {} messages read; {} problem(s)",
        report.accounts,
        report.mailboxes,
        report.messages,
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "the mail store has damaged messages: {}",
            crate::store::damage::ADVICE
        )
    }
}

pub fn newaliases(config: &Config) -> anyhow::Result<()> {
    let (aliases, problems) = Aliases::load(&config.alias_path())?;
    for p in &problems {
        eprintln!("{}: {p}", config.alias_path().display());
    }
    let running = app::signal_daemon(config, libc::SIGHUP);
    println!(
        "{}: {} aliases{}",
        config.alias_path().display(),
        aliases.len(),
        if running { ", daemon reloaded" } else { "" }
    );
    Ok(())
}

/// Writes bytes to stdout (message text may not be UTF-8).
pub fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
