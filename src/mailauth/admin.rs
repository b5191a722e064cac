//! `merpati dkim ...`: make, list, publish and rotate DKIM keys, and make
//! the first keys at daemon start.

use super::keys::{self, Algorithm, KeyFile, State};
use crate::config::Config;
use std::fmt::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Today's default selector for `algorithm`: `rsa202612`, `ed202612`.
/// Dated selectors make rotation plain to see in the DNS.
pub fn default_selector(algorithm: Algorithm) -> String {
    let (year, month, _) =
        crate::rfc5322::civil_from_days(crate::rfc5322::now_unix().div_euclid(86_400));
    let prefix = match algorithm {
        Algorithm::Rsa => "rsa",
        Algorithm::Ed25519 => "ed",
    };
    format!("{prefix}{year:04}{month:02}")
}

/// Gives what a root-run command made to the owner of `data_dir`, so the
/// daemon (running as that user) can read its keys.
fn give_to_daemon(data_dir: &Path, key: &KeyFile) {
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(meta) = std::fs::metadata(data_dir) else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    let root = keys::dkim_dir(data_dir);
    for path in [root.clone(), root.join(&key.domain), key.path.clone()] {
        if let Err(e) = std::os::unix::fs::chown(&path, Some(uid), Some(gid)) {
            tracing::warn!("cannot give {} to uid {uid}: {e}", path.display());
        }
    }
}

pub fn generate(
    config: &Config,
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
) -> anyhow::Result<String> {
    let selector = selector
        .map(str::to_string)
        .unwrap_or_else(|| default_selector(algorithm));
    let key = keys::generate(&config.data_dir, domain, &selector, algorithm)?;
    give_to_daemon(&config.data_dir, &key);
    let record = keys::record(&key)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; {} key {} for {}: {}",
        key.algorithm.tag(),
        key.selector,
        key.domain,
        key.state.describe()
    );
    let _ = writeln!(
        out,
        "{}",
        keys::zone_line(
            &format!("{}._domainkey.{}", key.selector, key.domain),
            &record
        )
    );
    if key.state == State::Pending {
        let _ = writeln!(
            out,
            "; publish this record, wait for the DNS to show it, then: merpati dkim activate {} {}",
            key.domain, key.selector
        );
    }
    Ok(out)
}

/// One line per key: domain, selector, algorithm, state, file.
pub fn list(config: &Config) -> anyhow::Result<String> {
    let mut out = String::new();
    for key in keys::list(&config.data_dir, None)? {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            key.domain,
            key.selector,
            key.algorithm.tag(),
            key.state.describe(),
            key.path.display()
        );
    }
    Ok(out)
}

/// The records to publish, in zone-file form: each key's TXT record, and
/// the SPF and DMARC records we recommend for each domain with keys.
pub fn records(config: &Config, domain: Option<&str>) -> anyhow::Result<String> {
    let all = keys::list(&config.data_dir, domain)?;
    if all.is_empty() {
        anyhow::bail!(
            "no DKIM keys{}; make one with `merpati dkim generate DOMAIN`",
            domain.map(|d| format!(" for {d}")).unwrap_or_default()
        );
    }
    let mut out = String::new();
    let mut domains: Vec<&str> = all.iter().map(|k| k.domain.as_str()).collect();
    domains.dedup();
    for d in domains {
        let _ = writeln!(out, "; {d}");
        for key in all.iter().filter(|k| k.domain == d) {
            let _ = writeln!(
                out,
                "; selector {} ({}): {}",
                key.selector,
                key.algorithm.tag(),
                key.state.describe()
            );
            match keys::record(key) {
                Ok(record) => {
                    let _ = writeln!(
                        out,
                        "{}",
                        keys::zone_line(&format!("{}._domainkey.{d}", key.selector), &record)
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "; unreadable: {e}");
                }
            }
        }
        let _ = writeln!(
            out,
            "; SPF: the domain's MX hosts (this server) send its mail."
        );
        let _ = writeln!(
            out,
            "{}",
            keys::zone_line(d, &format!("v=spf1 mx a:{} ~all", config.myhostname))
        );
        let _ = writeln!(
            out,
            "; DMARC: start by watching (p=none), then p=quarantine or p=reject."
        );
        let _ = writeln!(
            out,
            "{}",
            keys::zone_line(
                &format!("_dmarc.{d}"),
                &format!("v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:postmaster@{d}")
            )
        );
    }
    Ok(out)
}

pub fn activate(config: &Config, domain: &str, selector: &str) -> anyhow::Result<String> {
    Ok(match keys::activate(&config.data_dir, domain, selector)? {
        None => format!("{domain}: {selector} signs already\n"),
        Some(previous) => format!(
            "{domain}: {selector} signs now; {} is retired (keep its record a few days, then: merpati dkim retire {domain} {})\n",
            previous.selector, previous.selector
        ),
    })
}

pub fn retire(config: &Config, domain: &str, selector: &str) -> anyhow::Result<String> {
    keys::retire(&config.data_dir, domain, selector)?;
    Ok(format!(
        "{domain}: {selector} removed; its DNS record can go\n"
    ))
}

/// At daemon start: keys for every local domain that is a DNS name and has
/// none yet, so signing works with zero edits (`mailauth.generate_keys`).
/// Slow (an RSA-2048 key takes a moment), so it runs off the runtime.
pub fn generate_missing(config: &Config) {
    if !config.mailauth.generate_keys || !config.mailauth.sign {
        return;
    }
    let mut domains: Vec<String> = config
        .mydestination
        .iter()
        .chain(&config.virtual_mailbox_domains)
        .map(|d| d.to_ascii_lowercase())
        .filter(|d| keys::is_public_domain(d))
        .collect();
    domains.sort();
    domains.dedup();
    for domain in domains {
        match keys::list(&config.data_dir, Some(&domain)) {
            Ok(existing) if existing.is_empty() => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("cannot look at the DKIM keys of {domain}: {e}");
                continue;
            }
        }
        for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
            match keys::generate(
                &config.data_dir,
                &domain,
                &default_selector(algorithm),
                algorithm,
            ) {
                Ok(key) => tracing::info!(
                    "made DKIM key {} ({}) for {domain}; publish it: merpati dkim records {domain}",
                    key.selector,
                    algorithm.tag()
                ),
                Err(e) => tracing::warn!("cannot make a DKIM key for {domain}: {e}"),
            }
        }
    }
}
