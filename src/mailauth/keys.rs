//! DKIM keys on disk: `<data_dir>/dkim/<domain>/<selector>.<algorithm>.key`
//! (mode 0600, PEM: PKCS#1 for RSA, PKCS#8 for Ed25519). The file name
//! says the state, so rotation is a rename:
//!
//! - `*.key`: signs (at most one per domain and algorithm);
//! - `*.key.new`: generated while another key of its algorithm signs;
//!   its record is printed so it can be published first;
//! - `*.key.old`: retired from signing; its record stays printed until
//!   `merpati dkim retire` removes it, so mail signed with it verifies.

use crate::auth::base64_encode;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(text: &str) -> Option<Algorithm> {
        match text.to_ascii_lowercase().as_str() {
            "rsa" | "rsa-sha256" => Some(Algorithm::Rsa),
            "ed25519" | "ed25519-sha256" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Signing,
    Pending,
    Retiring,
}

impl State {
    fn suffix(self) -> &'static str {
        match self {
            State::Signing => "key",
            State::Pending => "key.new",
            State::Retiring => "key.old",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            State::Signing => "signing",
            State::Pending => "published, not signing yet",
            State::Retiring => "retired, record still published",
        }
    }
}

/// One key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub state: State,
    pub path: PathBuf,
}

/// A key ready to sign.
pub enum SigningKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not a usable {1} private key: {2}")]
    Format(PathBuf, &'static str, String),
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("`{0}` is not a valid selector (letters, digits, '-' and '_', up to 63)")]
    Selector(String),
    #[error("`{0}` is not a domain name")]
    Domain(String),
    #[error("{domain} has a key with selector {selector} already")]
    Exists { domain: String, selector: String },
    #[error("{domain} has no key with selector {selector}{what}")]
    Missing {
        domain: String,
        selector: String,
        what: &'static str,
    },
}

pub fn dkim_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dkim")
}

fn valid_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !selector.starts_with('-')
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Every key file of `domain` (or of every domain), sorted.
pub fn list(data_dir: &Path, domain: Option<&str>) -> Result<Vec<KeyFile>, KeyError> {
    let root = dkim_dir(data_dir);
    let domains: Vec<String> = match domain {
        Some(d) => vec![d.to_ascii_lowercase()],
        None => match std::fs::read_dir(&root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(KeyError::Io(root, e)),
        },
    };
    let mut out = Vec::new();
    for domain in domains {
        let dir = root.join(&domain);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(KeyError::Io(dir, e)),
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(key) = parse_name(&domain, &name, entry.path()) {
                out.push(key);
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.domain, &a.selector, a.algorithm.tag()).cmp(&(
            &b.domain,
            &b.selector,
            b.algorithm.tag(),
        ))
    });
    Ok(out)
}

fn parse_name(domain: &str, name: &str, path: PathBuf) -> Option<KeyFile> {
    let (stem, state) = if let Some(stem) = name.strip_suffix(".key") {
        (stem, State::Signing)
    } else if let Some(stem) = name.strip_suffix(".key.new") {
        (stem, State::Pending)
    } else if let Some(stem) = name.strip_suffix(".key.old") {
        (stem, State::Retiring)
    } else {
        return None;
    };
    let (selector, tag) = stem.rsplit_once('.')?;
    let algorithm = Algorithm::parse(tag)?;
    valid_selector(selector).then(|| KeyFile {
        domain: domain.to_string(),
        selector: selector.to_string(),
        algorithm,
        state,
        path,
    })
}

/// Makes a new key pair for `domain`. It signs at once when the domain has
/// no signing key of that algorithm yet; otherwise it waits (`.key.new`)
/// until `activate`, so its record can be published first.
pub fn generate(
    data_dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
) -> Result<KeyFile, KeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(KeyError::Domain(domain));
    }
    if !valid_selector(selector) {
        return Err(KeyError::Selector(selector.to_string()));
    }
    let existing = list(data_dir, Some(&domain))?;
    if existing
        .iter()
        .any(|k| k.selector.eq_ignore_ascii_case(selector))
    {
        return Err(KeyError::Exists {
            domain,
            selector: selector.to_string(),
        });
    }
    let state = if existing
        .iter()
        .any(|k| k.algorithm == algorithm && k.state == State::Signing)
    {
        State::Pending
    } else {
        State::Signing
    };
    let pem = match algorithm {
        Algorithm::Rsa => {
            let pair =
                DkimKeyPair::generate_rsa(2048).map_err(|e| KeyError::Generate(e.to_string()))?;
            pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pair.private_key()))
        }
        Algorithm::Ed25519 => {
            let pair =
                DkimKeyPair::generate_ed25519().map_err(|e| KeyError::Generate(e.to_string()))?;
            pem::encode(&pem::Pem::new("PRIVATE KEY", pair.private_key()))
        }
    };
    let dir = dkim_dir(data_dir);
    crate::perms::private_dir(&dir, 0o700).map_err(|e| KeyError::Io(dir.clone(), e))?;
    let dir = dir.join(&domain);
    crate::perms::private_dir(&dir, 0o700).map_err(|e| KeyError::Io(dir.clone(), e))?;
    let path = dir.join(format!("{selector}.{}.{}", algorithm.tag(), state.suffix()));
    crate::perms::write_private_file(&path, pem.as_bytes(), 0o600)
        .map_err(|e| KeyError::Io(path.clone(), e))?;
    Ok(KeyFile {
        domain,
        selector: selector.to_string(),
        algorithm,
        state,
        path,
    })
}

fn find(data_dir: &Path, domain: &str, selector: &str) -> Result<KeyFile, KeyError> {
    list(data_dir, Some(domain))?
        .into_iter()
        .find(|k| k.selector == selector)
        .ok_or_else(|| KeyError::Missing {
            domain: domain.to_string(),
            selector: selector.to_string(),
            what: "",
        })
}

fn rename(key: &KeyFile, state: State) -> Result<(), KeyError> {
    let to = key.path.with_file_name(format!(
        "{}.{}.{}",
        key.selector,
        key.algorithm.tag(),
        state.suffix()
    ));
    std::fs::rename(&key.path, &to).map_err(|e| KeyError::Io(key.path.clone(), e))
}

/// Makes `selector` the signing key of its algorithm; the one it replaces
/// is retired (its record should stay published for a few days).
pub fn activate(
    data_dir: &Path,
    domain: &str,
    selector: &str,
) -> Result<Option<KeyFile>, KeyError> {
    let key = find(data_dir, domain, selector)?;
    if key.state == State::Signing {
        return Ok(None);
    }
    let previous = list(data_dir, Some(domain))?
        .into_iter()
        .find(|k| k.algorithm == key.algorithm && k.state == State::Signing);
    if let Some(previous) = &previous {
        rename(previous, State::Retiring)?;
    }
    rename(&key, State::Signing)?;
    Ok(previous)
}

/// Deletes a key that no longer signs.
pub fn retire(data_dir: &Path, domain: &str, selector: &str) -> Result<(), KeyError> {
    let key = find(data_dir, domain, selector)?;
    if key.state == State::Signing {
        return Err(KeyError::Missing {
            domain: domain.to_string(),
            selector: selector.to_string(),
            what: " that has stopped signing (activate its successor first)",
        });
    }
    std::fs::remove_file(&key.path).map_err(|e| KeyError::Io(key.path.clone(), e))
}

/// Reads a key file for signing.
pub fn load(key: &KeyFile) -> Result<SigningKey, KeyError> {
    let text = std::fs::read(&key.path).map_err(|e| KeyError::Io(key.path.clone(), e))?;
    let bad = |why: String| KeyError::Format(key.path.clone(), key.algorithm.tag(), why);
    match key.algorithm {
        Algorithm::Rsa => {
            let der = match PrivatePkcs1KeyDer::from_pem_slice(&text) {
                Ok(der) => PrivateKeyDer::Pkcs1(der),
                Err(_) => PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from_pem_slice(&text).map_err(|e| bad(e.to_string()))?,
                ),
            };
            RsaKey::<Sha256>::from_key_der(der)
                .map(SigningKey::Rsa)
                .map_err(|e| bad(e.to_string()))
        }
        Algorithm::Ed25519 => {
            let der = PrivatePkcs8KeyDer::from_pem_slice(&text).map_err(|e| bad(e.to_string()))?;
            Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
                .map(SigningKey::Ed25519)
                .map_err(|e| bad(e.to_string()))
        }
    }
}

/// The `p=` value: base64 of the SubjectPublicKeyInfo for RSA (what
/// OpenDKIM publishes), of the raw 32-byte key for Ed25519 (RFC 8463 §4).
pub fn public_key(key: &SigningKey) -> String {
    match key {
        SigningKey::Rsa(rsa) => base64_encode(&rsa_spki(&rsa.public_key())),
        SigningKey::Ed25519(ed) => base64_encode(&ed.public_key()),
    }
}

/// DER SubjectPublicKeyInfo around a PKCS#1 RSAPublicKey.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// The TXT record value of a key.
pub fn record(key: &KeyFile) -> Result<String, KeyError> {
    let loaded = load(key)?;
    Ok(format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm.tag(),
        public_key(&loaded)
    ))
}

/// One zone-file line: `NAME. IN TXT "..." "..."`, the value split into
/// strings of at most 255 bytes (RFC 1035 §3.3.14).
pub fn zone_line(name: &str, value: &str) -> String {
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name}. IN TXT {}", strings.join(" "))
}

/// Whether a local domain should get keys without being asked: a DNS name
/// that can be published (not `localhost`, not a single label, not a
/// special-use name of RFC 6761 / RFC 6762 that never leaves the host).
pub fn is_public_domain(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if !d.contains('.') || !valid_domain(&d) {
        return false;
    }
    let private = [
        "localhost",
        "localdomain",
        "local",
        "invalid",
        "internal",
        "home.arpa",
        "lan",
    ];
    !private
        .iter()
        .any(|suffix| d == *suffix || d.ends_with(&format!(".{suffix}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = generate(d, "Example.ORG", "s1", Algorithm::Ed25519).unwrap();
        assert_eq!(first.state, State::Signing);
        assert_eq!(first.domain, "example.org");
        let second = generate(d, "example.org", "s2", Algorithm::Ed25519).unwrap();
        assert_eq!(second.state, State::Pending);
        assert!(matches!(
            generate(d, "example.org", "s2", Algorithm::Ed25519),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            retire(d, "example.org", "s1"),
            Err(KeyError::Missing { .. })
        ));
        activate(d, "example.org", "s2").unwrap();
        let states: Vec<(String, State)> = list(d, None)
            .unwrap()
            .into_iter()
            .map(|k| (k.selector, k.state))
            .collect();
        assert_eq!(
            states,
            [
                ("s1".into(), State::Retiring),
                ("s2".into(), State::Signing)
            ]
        );
        retire(d, "example.org", "s1").unwrap();
        assert_eq!(list(d, None).unwrap().len(), 1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.join("dkim/example.org/s2.ed25519.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let record = record(&list(d, None).unwrap()[0]).unwrap();
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
        assert_eq!(base64_decode_len(&record), 32);
    }

    fn base64_decode_len(record: &str) -> usize {
        let p = record.rsplit("p=").next().unwrap();
        crate::auth::base64_decode(p).unwrap().len()
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for selector in ["", "a.b", "-x", "a b", &"x".repeat(64)] {
            assert!(matches!(
                generate(dir.path(), "example.org", selector, Algorithm::Ed25519),
                Err(KeyError::Selector(_))
            ));
        }
        for domain in ["", "a..b", "../etc", "a/b"] {
            assert!(matches!(
                generate(dir.path(), domain, "s", Algorithm::Ed25519),
                Err(KeyError::Domain(_))
            ));
        }
    }

    #[test]
    fn long_records_are_split_into_255_byte_strings() {
        let value = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(392);
        let line = zone_line("s._domainkey.example.org", &value);
        assert!(line.starts_with("s._domainkey.example.org. IN TXT \""));
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert_eq!(strings.len(), 2);
        assert_eq!(strings[0].len(), 255);
        assert_eq!(strings.concat(), value);
    }

    #[test]
    fn public_domains() {
        for (domain, public) in [
            ("example.org", true),
            ("mail.b.test", true),
            ("localhost", false),
            ("localhost.localdomain", false),
            ("myhost", false),
            ("printer.local", false),
            ("x.home.arpa", false),
        ] {
            assert_eq!(is_public_domain(domain), public, "{domain}");
        }
    }
}
