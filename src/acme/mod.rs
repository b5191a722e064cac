//! Certificates from an ACME authority (RFC 8555), Let's Encrypt's way:
//! at start and whenever the stored certificate is within
//! `acme.renew_before` of its end (or lacks a configured name), order one
//! for `myhostname` and `acme.names`, answer the authority's challenge on
//! the web listener, store chain and key in one file under
//! `data_dir/acme`, and swap it into every TLS listener at once (they all
//! read the same `Live` config at each handshake). Until the first one is
//! issued the self-signed certificate serves; a failed attempt is retried
//! after `acme.retry_min`, doubling up to `acme.retry_max`.
//!
//! - [`challenges`]: the answers the web listener gives the authority.
//! - `order`: one order, from account to chain.

pub mod challenges;
mod order;

pub use challenges::Challenges;

use crate::config::Config;
use crate::live::Live;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest sleep between looks at the certificate (a clock jump or a
/// replaced file is noticed within this).
const MAX_SLEEP: Duration = Duration::from_secs(12 * 3600);

pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}

/// The issued chain and its key, one PEM file.
pub fn certificate_path(data_dir: &Path) -> PathBuf {
    state_dir(data_dir).join("certificate.pem")
}

/// The names the stored certificate was ordered for, one per line.
fn names_path(data_dir: &Path) -> PathBuf {
    state_dir(data_dir).join("names")
}

/// `myhostname` first, then `acme.names`, lowercased, without repeats.
pub fn names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in std::iter::once(&config.myhostname).chain(&config.acme.names) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// When the stored certificate is due for renewal (Unix time); `None`
/// when there is none, it cannot be read, or it lacks a wanted name.
pub fn renewal_due(config: &Config) -> Option<i64> {
    let validity = stored_validity(&config.data_dir)?;
    let stored = std::fs::read_to_string(names_path(&config.data_dir)).ok()?;
    let stored: Vec<&str> = stored.lines().collect();
    if names(config).iter().any(|n| !stored.contains(&n.as_str())) {
        return None;
    }
    let before = i64::try_from(config.acme.renew_before.0.as_secs()).unwrap_or(i64::MAX);
    Some(validity.not_after.saturating_sub(before))
}

/// The validity of the stored ACME certificate.
fn stored_validity(data_dir: &Path) -> Option<crate::tls::x509::Validity> {
    let der = crate::tls::leaf_certificate(&certificate_path(data_dir))?;
    crate::tls::x509::validity(&der)
}

/// The wait after the `failures`-th failure in a row.
fn backoff(config: &Config, failures: u32) -> Duration {
    let min = config.acme.retry_min.0;
    let factor = 1u32 << failures.saturating_sub(1).min(20);
    min.saturating_mul(factor).min(config.acme.retry_max.0)
}

/// The renewal task: runs until `stop`; `wake` (SIGHUP) makes it look at
/// the config and certificate again at once.
pub async fn run(
    config: Arc<Live<Config>>,
    tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    challenges: Arc<Challenges>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let current = config.get();
        let wait = if current.acme.enabled() {
            // An order in flight is dropped at shutdown, not waited for.
            tokio::select! {
                wait = step(&current, &tls, &challenges, &mut failures) => wait,
                _ = stop.cancelled() => return,
            }
        } else {
            MAX_SLEEP
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Orders a certificate if one is due; returns how long to sleep.
async fn step(
    config: &Config,
    tls: &Live<Arc<rustls::ServerConfig>>,
    challenges: &Challenges,
    failures: &mut u32,
) -> Duration {
    let now = crate::rfc5322::now_unix();
    if let Some(due) = renewal_due(config)
        && due > now
    {
        let secs = u64::try_from(due - now).unwrap_or(0);
        return Duration::from_secs(secs).min(MAX_SLEEP);
    }
    let names = names(config);
    let attempt = order::obtain(config, &names, challenges);
    let result = match tokio::time::timeout(config.acme.order_timeout.0, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no certificate within acme.order_timeout ({:?})",
            config.acme.order_timeout.0
        )),
    };
    let result = result.and_then(|issued| install(config, &names, &issued, tls));
    match result {
        Ok(until) => {
            *failures = 0;
            tracing::info!(
                "acme: obtained a certificate for {} (valid until {})",
                names.join(", "),
                crate::rfc5322::format_date(until)
            );
            crate::metrics::get().acme_result(true);
            // Even a certificate that is due at once (renew_before longer
            // than its lifetime) is not ordered again in a tight loop.
            config.acme.retry_min.0
        }
        Err(e) => {
            *failures += 1;
            let wait = backoff(config, *failures);
            tracing::warn!(
                "acme: no certificate for {}: {e}; next attempt in {}s",
                names.join(", "),
                wait.as_secs()
            );
            crate::metrics::get().acme_result(false);
            wait
        }
    }
}

/// Stores what was issued and puts it into service; returns its end.
fn install(
    config: &Config,
    names: &[String],
    issued: &order::Issued,
    tls: &Live<Arc<rustls::ServerConfig>>,
) -> Result<i64, String> {
    let dir = state_dir(&config.data_dir);
    crate::perms::private_dir(&dir, 0o700).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = certificate_path(&config.data_dir);
    // Loaded from a side file first: a chain that does not load, or does
    // not fit its key, never replaces the one in service.
    let candidate = dir.join("candidate.pem");
    let mut pem = issued.chain_pem.clone();
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&issued.key_pem);
    crate::perms::write_private_file(&candidate, pem.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", candidate.display()))?;
    let checked = crate::tls::load_pair(&candidate, &candidate)
        .map_err(|e| format!("issued chain: {e}"))
        .and_then(|_| {
            crate::tls::leaf_certificate(&candidate)
                .and_then(|der| crate::tls::x509::validity(&der))
                .map(|v| v.not_after)
                .ok_or_else(|| "the issued certificate has no readable validity".to_string())
        });
    let until = match checked {
        Ok(until) => until,
        Err(e) => {
            let _ = std::fs::remove_file(&candidate);
            return Err(e);
        }
    };
    std::fs::rename(&candidate, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    // After the certificate: a crash between the two leaves the old list,
    // which makes the next start order once more, nothing worse.
    let names_file = names_path(&config.data_dir);
    crate::perms::write_private_file(
        &names_file,
        format!("{}\n", names.join("\n")).as_bytes(),
        0o600,
    )
    .map_err(|e| format!("{}: {e}", names_file.display()))?;
    let server = crate::tls::server_config(config).map_err(|e| e.to_string())?;
    tls.set(server);
    Ok(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_hostname_then_the_extra_ones_once() {
        let mut config = Config {
            myhostname: "Mail.Example.".into(),
            ..Config::default()
        };
        config.acme.names = vec!["mta-sts.example".into(), "mail.example".into()];
        assert_eq!(names(&config), ["mail.example", "mta-sts.example"]);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut config = Config::default();
        config.acme.retry_min = crate::config::Span::secs(60);
        config.acme.retry_max = crate::config::Span::secs(300);
        let waits: Vec<u64> = (1..=5).map(|n| backoff(&config, n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 300, 300]);
        assert_eq!(backoff(&config, u32::MAX).as_secs(), 300);
    }
}
