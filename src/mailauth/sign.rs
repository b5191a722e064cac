//! DKIM signing of mail from our own users (RFC 6376, RFC 8463): every
//! signing key of the From: domain signs (RSA-SHA256 and Ed25519-SHA256
//! side by side when both exist), relaxed/relaxed, over the usual header
//! set with From over-signed. OpenDKIM's signing mode, inside cleanup.
//!
//! Keys are read from `<data_dir>/dkim` and read again when a key
//! directory changes (checked at most every few seconds), so `merpati
//! dkim generate|activate|retire` need no reload.

use super::headers;
use super::keys::{self, KeyFile, SigningKey, State};
use crate::config::Config;
use crate::live::Live;
use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Header fields signed when present (From twice: over-signed, so no
/// second From can be added without breaking the signature).
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// How often the key directories are looked at for changes.
const RESCAN: Duration = Duration::from_secs(2);

struct LoadedKey {
    selector: String,
    /// Built once per key; the header list is set per message, hence
    /// the lock (signing takes about a millisecond with RSA-2048).
    signer: Mutex<DkimSigner<DkimKey, Done>>,
}

#[derive(Default)]
struct Ring {
    /// Domain → its signing keys (RSA first).
    keys: HashMap<String, Vec<Arc<LoadedKey>>>,
    /// Modification times of `dkim/` and each domain directory.
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
    checked: Option<Instant>,
}

pub struct Signer {
    data_dir: PathBuf,
    live: Arc<Live<Config>>,
    ring: Mutex<Ring>,
}

impl Signer {
    pub fn new(live: Arc<Live<Config>>) -> Self {
        Signer {
            data_dir: live.get().data_dir.clone(),
            live,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// The DKIM-Signature fields for `message` (to prepend), or an empty
    /// string when its From: domain has no key. Never fails the message:
    /// a broken key is logged and the message goes out unsigned.
    pub fn sign(&self, message: &[u8]) -> String {
        if !self.live.get().mailauth.sign {
            return String::new();
        }
        let from = headers::from_domain(message);
        if from.is_empty() {
            return String::new();
        }
        let keys = self.keys_for(&from);
        if keys.is_empty() {
            return String::new();
        }
        let present: Vec<&str> = {
            let fields = headers::fields(message);
            SIGNED
                .iter()
                .copied()
                .filter(|name| {
                    fields
                        .iter()
                        .any(|f| f.name(message).eq_ignore_ascii_case(name.as_bytes()))
                })
                .collect()
        };
        let mut names: Vec<&str> = present.clone();
        if present.contains(&"From") {
            names.push("From");
        }
        let mut out = String::new();
        for (domain, key) in keys {
            // mail-auth must not take the daemon down with a bug: a panic
            // while signing leaves this message unsigned.
            let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sign_with(&key, &names, message)
            }));
            match signed {
                Ok(Ok(header)) => out.push_str(&header),
                Ok(Err(e)) => tracing::warn!(
                    "DKIM signing for {domain} (selector {}) failed: {e}",
                    key.selector
                ),
                Err(_) => {
                    tracing::error!("DKIM signing for {domain} panicked; message left unsigned")
                }
            }
        }
        out
    }

    /// The keys of `domain`, else of its parent domains (a key for
    /// `example.org` signs for `mail.example.org` too: aligned, relaxed).
    fn keys_for(&self, domain: &str) -> Vec<(String, Arc<LoadedKey>)> {
        let Ok(mut ring) = self.ring.lock() else {
            return Vec::new();
        };
        self.refresh(&mut ring);
        let mut candidate = domain;
        loop {
            if let Some(keys) = ring.keys.get(candidate) {
                return keys
                    .iter()
                    .map(|k| (candidate.to_string(), k.clone()))
                    .collect();
            }
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent,
                _ => return Vec::new(),
            }
        }
    }

    fn refresh(&self, ring: &mut Ring) {
        if ring.checked.is_some_and(|t| t.elapsed() < RESCAN) {
            return;
        }
        ring.checked = Some(Instant::now());
        let root = keys::dkim_dir(&self.data_dir);
        let mut stamps = vec![(root.clone(), mtime(&root))];
        if let Ok(entries) = std::fs::read_dir(&root) {
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            dirs.sort();
            stamps.extend(dirs.into_iter().map(|d| {
                let t = mtime(&d);
                (d, t)
            }));
        }
        if stamps == ring.stamps {
            return;
        }
        ring.stamps = stamps;
        ring.keys = load_all(&self.data_dir);
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_all(data_dir: &Path) -> HashMap<String, Vec<Arc<LoadedKey>>> {
    let mut out: HashMap<String, Vec<Arc<LoadedKey>>> = HashMap::new();
    let files = match keys::list(data_dir, None) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("cannot read the DKIM keys: {e}");
            return out;
        }
    };
    let mut signing: Vec<KeyFile> = files
        .into_iter()
        .filter(|k| k.state == State::Signing)
        .collect();
    // RSA first: the signature every receiver verifies comes first.
    signing.sort_by_key(|k| k.algorithm != keys::Algorithm::Rsa);
    for file in signing {
        match keys::load(&file) {
            Ok(key) => {
                let key = match key {
                    SigningKey::Rsa(rsa) => DkimKey::Rsa(rsa),
                    SigningKey::Ed25519(ed) => DkimKey::Ed25519(ed),
                };
                let signer = DkimSigner::from_key(key)
                    .domain(file.domain.as_str())
                    .selector(file.selector.as_str())
                    .headers(["From"])
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed);
                out.entry(file.domain.clone())
                    .or_default()
                    .push(Arc::new(LoadedKey {
                        selector: file.selector.clone(),
                        signer: Mutex::new(signer),
                    }));
            }
            Err(e) => tracing::warn!("DKIM key not used: {e}"),
        }
    }
    out
}

fn sign_with(key: &LoadedKey, names: &[&str], message: &[u8]) -> Result<String, String> {
    let mut signer = key
        .signer
        .lock()
        .map_err(|_| "signer lock poisoned".to_string())?;
    signer.template.h = names.iter().map(|n| n.to_string()).collect();
    let signature = signer.sign(message).map_err(|e| e.to_string())?;
    Ok(signature.to_header())
}
