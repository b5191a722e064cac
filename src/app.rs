//! Wires the services from the config, runs them, and stops them in order:
//! SIGTERM stops the listeners, lets sessions in a transaction finish up to
//! `shutdown_timeout` (idle ones get 421), then stops the queue manager.
//! Nothing acknowledged is lost either way: acknowledgement follows fsync.

use crate::auth::Authenticator;
use crate::cleanup::Cleanup;
use crate::config::{Config, parse_listen};
use crate::control;
use crate::delivery::local::LocalAgent;
use crate::delivery::relay::RelayAgent;
use crate::dns::HickoryResolver;
use crate::imap::ImapService;
use crate::live::Live;
use crate::mailauth::MailAuth;
use crate::mailauth::sign::Signer;
use crate::net::listener::{Limits, accept_loop, bind_all};
use crate::pop3::Pop3Service;
use crate::queue::journal::Journal;
use crate::queue::pickup;
use crate::queue::qmgr::{Qmgr, Triggers};
use crate::queue::spool::Spool;
use crate::rewrite::{Aliases, Resolver};
use crate::smtp::server::{Mode, SmtpService, refuse, serve_connection};
use crate::store::{MailStore, RedbStore, StoreError};
use crate::tls;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Name of the pid file under `<data_dir>/run`, used by the CLI to nudge a
/// running daemon (SIGHUP reload, SIGUSR1 queue run).
pub const PID_FILE: &str = "merpati.pid";

/// Opens the embedded store, naming the usual cause when it is locked.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn MailStore>> {
    match RedbStore::open(&config.store_dir()) {
        Ok(store) => Ok(Arc::new(store)),
        Err(StoreError::Locked) => bail!(
            "the mail store {} is in use by another process (is merpati serve running?)",
            config.store_dir().display()
        ),
        Err(e @ StoreError::Corrupt(_)) => bail!(
            "the mail store in {} cannot be opened: {e}\nWhat to do: {}",
            config.store_dir().display(),
            crate::store::damage::ADVICE
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot open the mail store in {}",
                config.store_dir().display()
            )
        }),
    }
}

/// Loads aliases, logging problems; a broken line never stops the server.
pub fn load_aliases(config: &Config) -> Aliases {
    match Aliases::load(&config.alias_path()) {
        Ok((aliases, problems)) => {
            for p in problems {
                tracing::warn!("{}: {p}", config.alias_path().display());
            }
            aliases
        }
        Err(e) => {
            tracing::warn!("{}: {e}", config.alias_path().display());
            Aliases::default()
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn serve(config_path: Option<PathBuf>, config: Config) -> anyhow::Result<()> {
    crate::perms::private_dir(&config.data_dir, 0o750)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    crate::perms::private_dir(&config.run_dir(), 0o750)
        .with_context(|| format!("cannot create {}", config.run_dir().display()))?;
    let tls_config = tls::server_config(&config).context("TLS set-up failed")?;
    let store = open_store(&config)?;
    let redb_file = config.store_dir().join("mail.redb");
    crate::perms::warn_if_wider(&redb_file, 0o640);
    crate::perms::warn_if_wider(&config.store_dir(), 0o750);
    crate::perms::warn_if_wider(&config.queue_dir(), 0o750);
    if store.account("postmaster")?.is_none() {
        // RFC 5321 §4.5.1: postmaster must exist; it can log in once an
        // admin sets its password (`merpati user passwd postmaster`).
        store.create_account("postmaster", None)?;
    }
    let spool = Arc::new(Spool::open(&config.queue_dir()).context("cannot open the queue")?);
    let recovered = spool.recover().context("queue recovery failed")?;
    if recovered > 0 {
        tracing::info!("moved {recovered} messages from active back to incoming");
    }
    let journal_dir = spool.journal_dir();
    let restored = Journal::replay(&journal_dir, &spool).context("queue journal replay failed")?;
    if restored > 0 {
        tracing::warn!("restored {restored} messages from the queue journal");
    }
    let journal = Arc::new(Journal::open(&journal_dir).context("cannot open the queue journal")?);

    let shared_config = Arc::new(Live::new(config.clone()));
    let resolver = Arc::new(Live::new(Resolver::new(&config, load_aliases(&config))));
    let tls_live = Arc::new(Live::new(tls_config));
    let triggers = Arc::new(Triggers::default());
    let pickup_wake = Arc::new(Notify::new());
    let content_checks =
        crate::checks::ContentChecks::from_config(&config).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("bad content checks: {}", text.join("; "))
        })?;
    let content_checks = Arc::new(Live::new(content_checks));
    let cleanup = Arc::new(
        Cleanup::new(
            spool.clone(),
            journal.clone(),
            config.myhostname.clone(),
            triggers.wake.clone(),
        )
        .with_signer(Arc::new(Signer::new(shared_config.clone())))
        .with_checks(content_checks.clone()),
    );

    let front_stop = CancellationToken::new();
    let back_stop = CancellationToken::new();
    let front = TaskTracker::new();
    let back = TaskTracker::new();

    let local = LocalAgent::start(
        store.clone(),
        config.queue.local_concurrency,
        config.queue.delivery_batch,
        &back,
    );
    let nameservers: Vec<_> = config
        .dns
        .nameservers
        .iter()
        .filter_map(|n| parse_listen(n))
        .collect();
    let dns = HickoryResolver::new(&nameservers, config.dns.timeout.0)
        .map_err(|e| anyhow::anyhow!("cannot set up the DNS resolver: {e}"))?;
    let mailauth = Arc::new(MailAuth::new(dns.handle(), shared_config.clone()));
    let keygen_config = config.clone();
    // Off the runtime (RSA key generation takes a moment), but tracked:
    // shutdown waits rather than leaving a half-written key.
    back.spawn_blocking(move || crate::mailauth::admin::generate_missing(&keygen_config));
    let active_set = Arc::new(crate::queue::active::ActiveSet::default());
    let dns: Arc<dyn crate::dns::Resolver> = Arc::new(dns);
    let rules = crate::policy::Rules::from_config(&config).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("bad restrictions: {}", text.join("; "))
    })?;
    let policy = Arc::new(crate::policy::Policy::new(
        rules,
        dns.clone(),
        &config.data_dir.join(GREYLIST_FILE),
    ));
    let relay = Arc::new(RelayAgent::new(shared_config.clone(), dns));
    let qmgr = Arc::new(Qmgr {
        relay,
        spool: spool.clone(),
        config: shared_config.clone(),
        resolver: resolver.clone(),
        store: store.clone(),
        local,
        cleanup: cleanup.clone(),
        journal: journal.clone(),
        triggers: triggers.clone(),
        active_set: active_set.clone(),
        mailauth: mailauth.clone(),
    });
    // The control socket lives exactly as long as the queue manager: while
    // it answers, admin commands ask it before touching `active`.
    let control_path = config.run_dir().join(control::SOCKET);
    let spam = Arc::new(crate::spam::SpamFilter::new(
        store.clone(),
        &config.data_dir,
    ));
    let control_context = Arc::new(control::Context {
        store: store.clone(),
        spool: spool.clone(),
        active: active_set.clone(),
        spam: spam.clone(),
        config: shared_config.clone(),
    });
    control::serve(&control_path, control_context, back_stop.clone(), &back)?;
    back.spawn(qmgr.run(back_stop.clone(), back.clone()));
    back.spawn(checkpoints(
        journal.clone(),
        spool.clone(),
        back_stop.clone(),
    ));
    back.spawn(save_greylist(
        policy.clone(),
        shared_config.clone(),
        back_stop.clone(),
    ));
    back.spawn(prune_delivery_records(
        store.clone(),
        shared_config.clone(),
        back_stop.clone(),
    ));
    back.spawn(pickup::run(
        spool.clone(),
        cleanup.clone(),
        pickup_wake.clone(),
        config.queue.pickup_interval.0,
        back_stop.clone(),
    ));

    // One set of counters for every service: failed logins on IMAP count
    // against SMTP AUTH from the same address too.
    let rates = Arc::new(crate::net::anvil::Rates::default());
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        resolver.clone(),
        rates.clone(),
        shared_config.clone(),
    ));
    let smtp = Arc::new(SmtpService {
        auth: auth.clone(),
        mailauth: mailauth.clone(),
        policy: policy.clone(),
        rates: rates.clone(),
        spam: spam.clone(),
        config: shared_config.clone(),
        resolver: resolver.clone(),
        store: store.clone(),
        cleanup: cleanup.clone(),
        tls: tls_live.clone(),
        triggers: triggers.clone(),
        shutdown: front_stop.clone(),
    });
    let imap = Arc::new(ImapService {
        config: shared_config.clone(),
        store: store.clone(),
        auth: auth.clone(),
        tls: tls_live.clone(),
        shutdown: front_stop.clone(),
        user_ip: Default::default(),
        spam: spam.clone(),
    });
    let managesieve = Arc::new(crate::managesieve::ManageSieveService {
        config: shared_config.clone(),
        store: store.clone(),
        auth: auth.clone(),
        tls: tls_live.clone(),
        shutdown: front_stop.clone(),
        user_ip: Default::default(),
    });
    let pop3 = Arc::new(Pop3Service {
        config: shared_config.clone(),
        store: store.clone(),
        auth: auth.clone(),
        tls: tls_live.clone(),
        shutdown: front_stop.clone(),
        user_ip: Default::default(),
    });
    let mailbox_listeners = [
        (
            "imapd",
            &config.imap.listen,
            config.imap.max_connections,
            config.imap.max_connections_per_client,
            false,
        ),
        (
            "imapd",
            &config.imap.tls_listen,
            config.imap.max_connections,
            config.imap.max_connections_per_client,
            true,
        ),
        (
            "pop3d",
            &config.pop3.listen,
            config.pop3.max_connections,
            config.pop3.max_connections_per_client,
            false,
        ),
        (
            "pop3d",
            &config.pop3.tls_listen,
            config.pop3.max_connections,
            config.pop3.max_connections_per_client,
            true,
        ),
    ];
    for (name, addrs, total, per_client, implicit_tls) in mailbox_listeners {
        let addrs: Vec<_> = addrs.iter().filter_map(|a| parse_listen(a)).collect();
        let service = if name == "imapd" { "imap" } else { "pop3" };
        let limits = Limits::new(service, total, per_client);
        for listener in bind_all(&addrs)? {
            tracing::info!(
                "{name} listening on {}{}",
                listener.local_addr()?,
                if implicit_tls { " (TLS)" } else { "" }
            );
            let stop = front_stop.clone();
            if name == "imapd" {
                let svc = imap.clone();
                front.spawn(accept_loop(
                    listener,
                    limits.clone(),
                    stop,
                    front.clone(),
                    move |tcp, admitted| {
                        crate::imap::serve_connection(svc.clone(), tcp, admitted, implicit_tls)
                    },
                    crate::imap::refuse,
                ));
            } else {
                let svc = pop3.clone();
                front.spawn(accept_loop(
                    listener,
                    limits.clone(),
                    stop,
                    front.clone(),
                    move |tcp, admitted| {
                        crate::pop3::serve_connection(svc.clone(), tcp, admitted, implicit_tls)
                    },
                    crate::pop3::refuse,
                ));
            }
        }
    }
    let addrs: Vec<_> = config
        .managesieve
        .listen
        .iter()
        .filter_map(|a| parse_listen(a))
        .collect();
    let limits = Limits::new(
        "managesieve",
        config.managesieve.max_connections,
        config.managesieve.max_connections_per_client,
    );
    for listener in bind_all(&addrs)? {
        tracing::info!("managesieve listening on {}", listener.local_addr()?);
        let svc = managesieve.clone();
        front.spawn(accept_loop(
            listener,
            limits.clone(),
            front_stop.clone(),
            front.clone(),
            move |tcp, admitted| crate::managesieve::serve_connection(svc.clone(), tcp, admitted),
            crate::managesieve::refuse,
        ));
    }
    let acme_challenges = Arc::new(crate::acme::Challenges::default());
    let acme_wake = Arc::new(Notify::new());
    back.spawn(crate::acme::run(
        shared_config.clone(),
        tls_live.clone(),
        acme_challenges.clone(),
        acme_wake.clone(),
        back_stop.clone(),
    ));
    // The status page's history: a sample of the counters each minute.
    let history = Arc::new(crate::webmail::status::History::default());
    if config.webmail.enabled {
        back.spawn(
            history
                .clone()
                .run(spool.clone(), store.clone(), back_stop.clone()),
        );
    }
    let http = Arc::new(crate::http::HttpService {
        config: shared_config.clone(),
        resolver: resolver.clone(),
        tls: tls_live.clone(),
        shutdown: front_stop.clone(),
        store: store.clone(),
        alpn: Default::default(),
        acme: acme_challenges.clone(),
        webmail: config.webmail.enabled.then(|| {
            Arc::new(crate::webmail::Webmail::new(
                shared_config.clone(),
                resolver.clone(),
                store.clone(),
                auth.clone(),
                cleanup.clone(),
                spam.clone(),
                Some(crate::webmail::admin::QueueAccess {
                    spool: spool.clone(),
                    active: active_set.clone(),
                    triggers: triggers.clone(),
                    history: history.clone(),
                }),
            ))
        }),
    });
    let limits = Limits::new(
        "http",
        config.http.max_connections,
        config.http.max_connections_per_client,
    );
    for (addrs, tls) in [
        (&config.http.listen, false),
        (&config.http.tls_listen, true),
    ] {
        let addrs: Vec<_> = addrs.iter().filter_map(|a| parse_listen(a)).collect();
        let router = crate::http::router(http.clone(), tls, config.http.max_body.0 as usize);
        for listener in bind_all(&addrs)? {
            tracing::info!(
                "http listening on {}{}",
                listener.local_addr()?,
                if tls { " (TLS)" } else { "" }
            );
            let svc = http.clone();
            let router = router.clone();
            front.spawn(accept_loop(
                listener,
                limits.clone(),
                front_stop.clone(),
                front.clone(),
                move |tcp, admitted| {
                    crate::http::serve_connection(svc.clone(), router.clone(), tcp, admitted, tls)
                },
                crate::http::refuse,
            ));
        }
    }
    // SMTP is bound last: once port 25 answers, every listener is bound
    // (a bound socket queues connections even before its accept loop runs),
    // which is what scripts waiting for port 25 expect.
    // Port 25 and submission share the SMTP connection limits.
    let limits = Limits::new(
        "smtpd",
        config.smtp.max_connections,
        config.smtp.max_connections_per_client,
    );
    let smtp_listeners = [
        (&config.smtp.listen, Mode::Mx),
        (
            &config.submission.listen,
            Mode::Submission {
                implicit_tls: false,
            },
        ),
        (
            &config.submission.tls_listen,
            Mode::Submission { implicit_tls: true },
        ),
    ];
    for (addrs, mode) in smtp_listeners {
        let addrs: Vec<_> = addrs.iter().filter_map(|a| parse_listen(a)).collect();
        for listener in bind_all(&addrs)? {
            tracing::info!("smtpd ({mode}) listening on {}", listener.local_addr()?);
            let svc = smtp.clone();
            let hostname = config.myhostname.clone();
            front.spawn(accept_loop(
                listener,
                limits.clone(),
                front_stop.clone(),
                front.clone(),
                move |tcp, admitted| serve_connection(svc.clone(), tcp, admitted, mode),
                move |tcp, refusal| refuse(tcp, refusal, hostname.clone()),
            ));
        }
    }
    let cleanup_for_postdrop = cleanup.clone();
    crate::queue::postdrop::serve(
        shared_config.clone(),
        cleanup_for_postdrop,
        front_stop.clone(),
        &front,
    )
    .context("cannot open the postdrop socket")?;
    write_pid(&config.run_dir())?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    spawn_watchdog(store.clone(), &front, front_stop.clone());
    tracing::info!(
        "merpati started on {} (data in {})",
        config.myhostname,
        config.data_dir.display()
    );

    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(config_path.as_deref(), &shared_config, &resolver, &tls_live, &policy, &content_checks);
                acme_wake.notify_one();
            }
            _ = usr1.recv() => {
                triggers.flush.notify_one();
                pickup_wake.notify_one();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let deadline = shared_config.get().shutdown_timeout.0;
    tracing::info!("stopping: finishing transactions in flight (up to {deadline:?})");
    front_stop.cancel();
    front.close();
    if tokio::time::timeout(deadline, front.wait()).await.is_err() {
        tracing::warn!("sessions still open at the shutdown deadline were closed");
    }
    back_stop.cancel();
    back.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), back.wait()).await;
    if let Err(e) = journal.checkpoint(&spool) {
        tracing::warn!("final queue checkpoint failed (the journal will be replayed): {e}");
    }
    let _ = std::fs::remove_file(config.run_dir().join(PID_FILE));
    let _ = std::fs::remove_file(&control_path);
    tracing::info!("stopped");
    Ok(())
}

/// systemd's watchdog (`WatchdogSec=` in the unit): `WATCHDOG=1` every
/// half period, but only while the daemon is alive in the ways that
/// matter: the runtime schedules this task, and the mail store answers a
/// read within the half period. A wedged store or runtime stops the pings
/// and systemd restarts the service (`Restart=on-failure`).
fn spawn_watchdog(store: Arc<dyn MailStore>, tasks: &TaskTracker, stop: CancellationToken) {
    // As libsystemd's sd_watchdog_enabled(3): WATCHDOG_USEC, for us unless
    // WATCHDOG_PID names another process.
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    if usec == 0 || !for_us {
        return;
    }
    let half = std::time::Duration::from_micros(usec / 2);
    tracing::info!("systemd watchdog: a ping every {half:?}");
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(half);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let store = store.clone();
            let probe = tokio::task::spawn_blocking(move || store.account("postmaster").is_ok());
            match tokio::time::timeout(half, probe).await {
                Ok(Ok(true)) => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
                _ => tracing::warn!("systemd watchdog: the mail store did not answer; no ping"),
            }
        }
    });
}

/// Every second, make the queue files durable and retire journal segments.
async fn checkpoints(journal: Arc<Journal>, spool: Arc<Spool>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
        let (journal, spool) = (journal.clone(), spool.clone());
        match tokio::task::spawn_blocking(move || journal.checkpoint(&spool)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("queue checkpoint failed: {e}"),
            Err(_) => tracing::warn!("queue checkpoint task failed"),
        }
    }
}

/// Hourly, forget delivery records (the store's duplicate guard) older
/// than any message can stay queued, so that table does not grow for ever.
/// The greylisting table, under `data_dir`.
const GREYLIST_FILE: &str = "greylist.tsv";

/// Writes the greylisting table every `save_interval`, and once more at
/// shutdown.
async fn save_greylist(
    policy: Arc<crate::policy::Policy>,
    config: Arc<Live<Config>>,
    stop: CancellationToken,
) {
    loop {
        let interval = config.get().greylist.save_interval.0;
        let last = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = stop.cancelled() => true,
        };
        let settings = config.get().greylist.clone();
        let policy = policy.clone();
        let now = crate::rfc5322::now_unix().max(0) as u64;
        let saved =
            tokio::task::spawn_blocking(move || policy.greylist().save(&settings, now)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("greylist: cannot save the table: {e}"),
            Err(_) => tracing::warn!("greylist: the save task failed"),
        }
        if last {
            return;
        }
    }
}

async fn prune_delivery_records(
    store: Arc<dyn MailStore>,
    config: Arc<Live<Config>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = stop.cancelled() => return,
        }
        let keep = config.get().queue.max_lifetime.0.as_secs() as i64 + 86_400;
        let cutoff = crate::rfc5322::now_unix() - keep;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.prune_delivered(cutoff)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!("pruned {n} old delivery records"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("pruning delivery records failed: {e}"),
            Err(_) => tracing::warn!("pruning task failed"),
        }
    }
}

/// SIGHUP: new config, aliases and certificates for new sessions; a
/// broken config is reported and the running one kept.
fn reload(
    path: Option<&Path>,
    config: &Live<Config>,
    resolver: &Live<Resolver>,
    tls_live: &Live<Arc<rustls::ServerConfig>>,
    policy: &crate::policy::Policy,
    content_checks: &Live<crate::checks::ContentChecks>,
) {
    // Refuses what check-config refuses, and changes nothing then.
    let fresh = match Config::load_checked(path) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                tracing::error!("reload refused: {p}");
            }
            return;
        }
    };
    // Checked by load_checked already; built again here so the tables'
    // text is the one just read, and nothing changes if that fails.
    let loaded = crate::policy::Rules::from_config(&fresh).and_then(|rules| {
        crate::checks::ContentChecks::from_config(&fresh).map(|checks| (rules, checks))
    });
    let (rules, checks) = match loaded {
        Ok(both) => both,
        Err(problems) => {
            for p in problems {
                tracing::error!("reload refused: {p}");
            }
            return;
        }
    };
    match tls::server_config(&fresh) {
        Ok(t) => tls_live.set(t),
        Err(e) => {
            tracing::error!("reload refused, the old configuration stays: {e}");
            return;
        }
    }
    policy.reload(rules);
    content_checks.set(checks);
    resolver.set(Resolver::new(&fresh, load_aliases(&fresh)));
    config.set(fresh);
    tracing::info!("reloaded configuration, aliases, tables and certificates");
}

fn write_pid(run_dir: &Path) -> anyhow::Result<()> {
    let path = run_dir.join(PID_FILE);
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Sends `signal` to a running daemon, if there is one; true if sent.
pub fn signal_daemon(config: &Config, signal: libc::c_int) -> bool {
    let Ok(text) = std::fs::read_to_string(config.run_dir().join(PID_FILE)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    pid > 0 && unsafe { libc::kill(pid, signal) } == 0
}
