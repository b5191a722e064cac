//! The `merpati` command: the daemon (`serve`) and the admin commands.
//! Invoked as `sendmail`, `mailq` or `newaliases` (by symlink) it behaves
//! as those classic commands.

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use merpati::admin;
use merpati::config::{Bytes, Config, DEFAULT_CONFIG_PATH};
use merpati::control::StoreOp;
use merpati::queue::AdminOp;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "merpati",
    version,
    about = "Merpati mail server: SMTP, queue, local delivery and mailbox store in one daemon"
)]
struct Cli {
    /// Configuration file (default: /etc/merpati/merpati.toml if it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve,
    /// Check the configuration and report every problem.
    CheckConfig,
    /// Check what receivers and mail clients look up in DNS for DOMAIN
    /// (else every local domain): each item OK or the record to publish.
    Doctor {
        domain: Option<String>,
        /// One JSON object per item, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Look into mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Bring mail in from another server's files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write ADDRESS's mailboxes as a Maildir++ tree (Dovecot, mutt).
    Export {
        address: String,
        dir: std::path::PathBuf,
    },
    /// A consistent copy of store, queue, keys and certificates into DIR
    /// (new or empty), taken while the daemon runs.
    Backup { dir: std::path::PathBuf },
    /// Restore a backup into the configured data_dir, which must be empty
    /// (the daemon stopped).
    Restore { dir: std::path::PathBuf },
    /// Inspect and manage the mail queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Queue a message read from stdin (sendmail(1) flags).
    Sendmail {
        /// sendmail(1) flags and recipients: -t, -f SENDER, -F NAME, -i/-oi,
        /// -bs, -bv, -bp, -q, -N, -R, -V ...
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Check the mailbox store for damage (the daemon must be stopped).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Make, publish and rotate DKIM keys.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// A user's Sieve scripts (filters run at delivery).
    #[command(subcommand)]
    Sieve(SieveCommand),
    /// Train the spam filter and edit a user's allow and block lists.
    #[command(subcommand)]
    Spam(SpamCommand),
    /// Validate the aliases file and make a running daemon reload it.
    Newaliases,
    /// Same as `queue list`.
    Mailq,
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Make a key pair for DOMAIN and print its DNS record. It signs at
    /// once if DOMAIN has no signing key of that algorithm, else it waits
    /// for `dkim activate`.
    Generate {
        domain: String,
        /// Default: rsa<YYYYMM> or ed<YYYYMM>.
        #[arg(long)]
        selector: Option<String>,
        /// rsa (2048 bits) or ed25519.
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// Print the records to publish (zone-file lines): DKIM keys, SPF, DMARC.
    Records { domain: Option<String> },
    /// One line per key: domain, selector, algorithm, state, file.
    List,
    /// Make SELECTOR the signing key of its algorithm (rotation).
    Activate { domain: String, selector: String },
    /// Delete a key that no longer signs.
    Retire { domain: String, selector: String },
}

#[derive(Subcommand)]
enum SieveCommand {
    /// The user's scripts; the active one is marked ACTIVE.
    List { address: String },
    /// Print a script.
    Get { address: String, name: String },
    /// Compile and store a script read from FILE (or stdin); errors give
    /// the line and column.
    Put {
        address: String,
        name: String,
        file: Option<std::path::PathBuf>,
    },
    /// Make NAME the script that runs at delivery.
    Activate { address: String, name: String },
    /// No script runs at delivery.
    Deactivate { address: String },
    /// Delete a script (not the active one).
    Delete { address: String, name: String },
}

#[derive(Subcommand)]
enum SpamCommand {
    /// Learn every message of a mailbox as spam or as ham for the user.
    Train {
        /// Learn them as spam.
        #[arg(long, conflicts_with = "ham", required_unless_present = "ham")]
        spam: bool,
        /// Learn them as ham (wanted mail).
        #[arg(long)]
        ham: bool,
        /// The account's address.
        address: String,
        /// The mailbox (default: Junk with --spam, INBOX with --ham).
        mailbox: Option<String>,
    },
    /// Never treat mail from ENTRY (an address or a domain) as spam, when
    /// SPF or DKIM vouch for it.
    Allow { address: String, entry: String },
    /// Always treat mail from ENTRY (an address or a domain) as spam.
    Block { address: String, entry: String },
    /// Take ENTRY off the user's allow or block list.
    Unlist { address: String, entry: String },
    /// What the filter has learnt for the user, and the user's lists.
    Show { address: String },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Verify the database (redb repairs what it can) and read every
    /// message body; exits non-zero when something is damaged.
    Check,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account; the password is read from stdin (prompted on a terminal).
    Add {
        /// The account's address (`fauzan@example.org`, or `fauzan` for myorigin).
        address: String,
        /// Quota such as 1GiB (default: store.default_quota).
        #[arg(long)]
        quota: Option<String>,
    },
    /// Delete an account and all its mail.
    Del {
        /// The account's address.
        address: String,
    },
    /// Change an account's password (read from stdin, prompted on a terminal).
    Passwd {
        /// The account's address.
        address: String,
    },
    /// List accounts.
    List,
    /// Let the account use the web administration (`/admin`), or with
    /// `--off` no longer.
    Admin {
        address: String,
        #[arg(long)]
        off: bool,
    },
    /// Set an account's quota (0 = unlimited).
    Quota {
        /// The account's address.
        address: String,
        /// Bytes, or with a unit: 500MiB, 2GiB, 1GB; 0 = unlimited.
        size: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// The messages of an mbox file (mboxo/mboxrd) into ADDRESS's
    /// MAILBOX (INBOX by default, made if missing); running it again
    /// imports nothing twice.
    Mbox {
        file: PathBuf,
        address: String,
        mailbox: Option<String>,
    },
    /// A Maildir (or Maildir++) tree into ADDRESS's mailboxes: the root
    /// is INBOX, folders keep their names; running it again imports
    /// nothing twice.
    Maildir { path: PathBuf, address: String },
}

#[derive(Subcommand)]
enum MailboxCommand {
    /// One line per message: UID, size, date, flags, from, subject.
    List {
        /// The account's address.
        address: String,
        /// The mailbox (default INBOX).
        mailbox: Option<String>,
    },
    /// Print a stored message.
    Cat {
        /// The account's address.
        address: String,
        /// The message's UID (first column of `mailbox list`).
        uid: u32,
        /// The mailbox (default INBOX).
        mailbox: Option<String>,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Show queued mail (like mailq).
    List,
    /// Retry deferred mail now (and forget destinations marked dead).
    Flush,
    /// Put a message (or ALL) on hold.
    Hold {
        /// A queue ID from `queue list`, or ALL.
        id: String,
    },
    /// Release a held message (or ALL).
    Release {
        /// A queue ID from `queue list`, or ALL.
        id: String,
    },
    /// Delete a message (or ALL).
    Delete {
        /// A queue ID from `queue list`, or ALL.
        id: String,
    },
    /// Requeue a message (or ALL) for a fresh delivery attempt.
    Requeue {
        /// A queue ID from `queue list`, or ALL.
        id: String,
    },
}

fn main() -> ExitCode {
    // Messages and password hashes: never readable by other local users.
    merpati::perms::restrict_umask();
    let argv0 = std::env::args()
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or(a)
        })
        .unwrap_or_default();
    let result = match argv0.as_str() {
        "sendmail" => classic_sendmail(),
        "mailq" => load(None).and_then(|c| admin::queue_list(&c)),
        "newaliases" => load(None).and_then(|c| admin::newaliases(&c)),
        _ => run(Cli::parse()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("merpati: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sendmail [flags] [rcpt...]`, where `-bp` means mailq and `-bi` newaliases.
fn classic_sendmail() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = load(None)?;
    merpati::sendmail::run(&config, &merpati::sendmail::parse_sendmail_args(&args)?)
}

/// The config file in use: `--config`, else `$MERPATI_CONFIG` (for the
/// `sendmail`/`mailq` names, which take no `--config`; like Postfix's
/// MAIL_CONFIG), else the packaged path if present.
fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given
        .or_else(|| std::env::var_os("MERPATI_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            default.exists().then_some(default)
        })
}

fn load(given: Option<PathBuf>) -> anyhow::Result<Config> {
    load_config(given, Config::load)
}

fn load_config(
    given: Option<PathBuf>,
    loader: fn(Option<&Path>) -> Result<Config, Vec<merpati::config::Problem>>,
) -> anyhow::Result<Config> {
    let path = config_path(given);
    loader(path.as_deref()).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow!("configuration problems:\n  {}", list.join("\n  "))
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let path = config_path(cli.config.clone());
    if let Command::CheckConfig = cli.command {
        return admin::check_config(path.as_deref());
    }
    // The daemon also needs the files the config names (certificate, key).
    let config = if matches!(cli.command, Command::Serve) {
        load_config(cli.config, Config::load_checked)?
    } else {
        load(cli.config)?
    };
    match cli.command {
        Command::Serve => {
            merpati::logging::init(&config.log.level, config.log.format, &config.myhostname);
            // Each Argon2id check allocates a 19 MiB block; glibc would
            // otherwise raise its mmap threshold after the first one and
            // keep later blocks in heaps that small session allocations pin,
            // so RSS grew to gigabytes with many logins. With blocks this
            // large always mmapped, they go back to the kernel when freed.
            // SAFETY: mallopt only changes allocator tuning; called before
            // any other thread exists.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(merpati::app::serve(path, config))
        }
        Command::CheckConfig => Ok(()),
        Command::Doctor { domain, json } => doctor(&config, domain.as_deref(), json),
        Command::Backup { dir } => merpati::admin::backup(&config, &dir),
        Command::Restore { dir } => merpati::admin::restore(&config, &dir),
        Command::Export { address, dir } => merpati::admin::export(&config, &address, &dir),
        Command::User(cmd) => user(&config, cmd),
        Command::Mailbox(cmd) => mailbox(&config, cmd),
        Command::Import(ImportCommand::Mbox {
            file,
            address,
            mailbox,
        }) => admin::import_mbox(
            &config,
            &file,
            &address,
            mailbox.as_deref().unwrap_or("INBOX"),
        ),
        Command::Import(ImportCommand::Maildir { path, address }) => {
            admin::import_maildir(&config, &path, &address)
        }
        Command::Queue(cmd) => match cmd {
            QueueCommand::List => admin::queue_list(&config),
            QueueCommand::Flush => admin::queue_flush(&config),
            QueueCommand::Hold { id } => admin::queue_admin(&config, AdminOp::Hold, &id),
            QueueCommand::Release { id } => admin::queue_admin(&config, AdminOp::Release, &id),
            QueueCommand::Delete { id } => admin::queue_admin(&config, AdminOp::Delete, &id),
            QueueCommand::Requeue { id } => admin::queue_admin(&config, AdminOp::Requeue, &id),
        },
        Command::Sendmail { args } => {
            merpati::sendmail::run(&config, &merpati::sendmail::parse_sendmail_args(&args)?)
        }
        Command::Store(StoreCommand::Check) => admin::store_check(&config),
        Command::Dkim(cmd) => dkim(&config, cmd),
        Command::Spam(cmd) => spam(&config, cmd),
        Command::Sieve(cmd) => sieve(&config, cmd),
        Command::Newaliases => admin::newaliases(&config),
        Command::Mailq => admin::queue_list(&config),
    }
}

/// `merpati doctor`: exits non-zero if any check failed.
fn doctor(config: &Config, domain: Option<&str>, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let items = runtime.block_on(async {
        let nameservers: Vec<_> = config
            .dns
            .nameservers
            .iter()
            .filter_map(|n| merpati::config::parse_listen(n))
            .collect();
        let dns = merpati::dns::HickoryResolver::new(&nameservers, config.dns.timeout.0)
            .map_err(|e| anyhow!("cannot set up the DNS resolver: {e}"))?;
        anyhow::Ok(merpati::doctor::check(config, &dns, domain).await)
    })?;
    if json {
        print!("{}", merpati::doctor::json(&items));
    } else {
        print!("{}", merpati::doctor::text(&items));
    }
    let failed = items
        .iter()
        .filter(|i| i.status == merpati::doctor::Status::Fail)
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

fn parse_size(text: &str) -> anyhow::Result<u64> {
    Bytes::parse(text).map(|b| b.0).map_err(|e| anyhow!(e))
}

fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let op = match cmd {
        UserCommand::Add { address, quota } => {
            let account = admin::account_of(config, &address)?;
            let quota = match quota {
                Some(q) => parse_size(&q)?,
                None => config.store.default_quota.0,
            };
            let password = admin::read_password()?;
            let hash = merpati::password::hash(&password).map_err(|e| anyhow!(e))?;
            StoreOp::AddUser {
                account,
                hash: Some(hash),
                quota,
            }
        }
        UserCommand::Del { address } => StoreOp::DeleteUser {
            account: admin::account_of(config, &address)?,
        },
        UserCommand::Passwd { address } => {
            let account = admin::account_of(config, &address)?;
            let password = admin::read_password()?;
            let hash = merpati::password::hash(&password).map_err(|e| anyhow!(e))?;
            StoreOp::SetPassword { account, hash }
        }
        UserCommand::List => StoreOp::ListUsers,
        UserCommand::Admin { address, off } => StoreOp::SetAdmin {
            account: admin::account_of(config, &address)?,
            admin: !off,
        },
        UserCommand::Quota { address, size } => StoreOp::SetQuota {
            account: admin::account_of(config, &address)?,
            quota: parse_size(&size)?,
        },
    };
    admin::print_bytes(&admin::run_store_op(config, &op)?)
}

fn sieve(config: &Config, cmd: SieveCommand) -> anyhow::Result<()> {
    use merpati::sieve::admin::SieveOp;
    let account = |address: &str| admin::account_of(config, address);
    let op = match cmd {
        SieveCommand::List { address } => SieveOp::List {
            account: account(&address)?,
        },
        SieveCommand::Get { address, name } => SieveOp::Get {
            account: account(&address)?,
            name,
        },
        SieveCommand::Put {
            address,
            name,
            file,
        } => {
            let text = match file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
                None => std::io::read_to_string(std::io::stdin())?,
            };
            if text.contains('\0') {
                return Err(anyhow!("a Sieve script cannot hold a NUL character"));
            }
            SieveOp::Put {
                account: account(&address)?,
                name,
                text,
            }
        }
        SieveCommand::Activate { address, name } => SieveOp::Activate {
            account: account(&address)?,
            name: Some(name),
        },
        SieveCommand::Deactivate { address } => SieveOp::Activate {
            account: account(&address)?,
            name: None,
        },
        SieveCommand::Delete { address, name } => SieveOp::Delete {
            account: account(&address)?,
            name,
        },
    };
    admin::print_bytes(&admin::run_sieve_op(config, &op)?)
}

fn spam(config: &Config, cmd: SpamCommand) -> anyhow::Result<()> {
    use merpati::spam::admin::SpamOp;
    use merpati::spam::lists::Which;
    let account = |address: &str| admin::account_of(config, address);
    let op = match cmd {
        SpamCommand::Train {
            spam,
            ham: _,
            address,
            mailbox,
        } => SpamOp::Train {
            account: account(&address)?,
            mailbox: mailbox.unwrap_or_else(|| if spam { "Junk" } else { "INBOX" }.into()),
            spam,
        },
        SpamCommand::Allow { address, entry } => SpamOp::List {
            account: account(&address)?,
            which: Which::Allow,
            entry,
        },
        SpamCommand::Block { address, entry } => SpamOp::List {
            account: account(&address)?,
            which: Which::Block,
            entry,
        },
        SpamCommand::Unlist { address, entry } => SpamOp::Unlist {
            account: account(&address)?,
            entry,
        },
        SpamCommand::Show { address } => SpamOp::Show {
            account: account(&address)?,
        },
    };
    admin::print_bytes(&admin::run_spam_op(config, &op)?)
}

fn mailbox(config: &Config, cmd: MailboxCommand) -> anyhow::Result<()> {
    let op = match cmd {
        MailboxCommand::List { address, mailbox } => StoreOp::ListMessages {
            account: admin::account_of(config, &address)?,
            mailbox: mailbox.unwrap_or_else(|| "INBOX".into()),
        },
        MailboxCommand::Cat {
            address,
            uid,
            mailbox,
        } => StoreOp::Cat {
            account: admin::account_of(config, &address)?,
            mailbox: mailbox.unwrap_or_else(|| "INBOX".into()),
            uid,
        },
    };
    admin::print_bytes(&admin::run_store_op(config, &op)?)
}

fn dkim(config: &Config, cmd: DkimCommand) -> anyhow::Result<()> {
    use merpati::mailauth::{admin as dkim, keys::Algorithm};
    let out = match cmd {
        DkimCommand::Generate {
            domain,
            selector,
            algorithm,
        } => {
            let algorithm = Algorithm::parse(&algorithm)
                .ok_or_else(|| anyhow!("unknown algorithm `{algorithm}` (rsa or ed25519)"))?;
            dkim::generate(config, &domain, selector.as_deref(), algorithm)?
        }
        DkimCommand::Records { domain } => dkim::records(config, domain.as_deref())?,
        DkimCommand::List => dkim::list(config)?,
        DkimCommand::Activate { domain, selector } => dkim::activate(config, &domain, &selector)?,
        DkimCommand::Retire { domain, selector } => dkim::retire(config, &domain, &selector)?,
    };
    print!("{out}");
    Ok(())
}
