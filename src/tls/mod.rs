//! Certificates and rustls configs. When no certificate is configured, a
//! self-signed one for `myhostname` is generated at first start under
//! `<data_dir>/tls`, so STARTTLS works without any set-up. Only TLS 1.2 and
//! 1.3 are enabled. With `[acme]`, the authority's certificate replaces the
//! self-signed one once it is issued (see `crate::acme`).

pub mod x509;

use crate::config::Config;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM {what} found")]
    Pem { path: PathBuf, what: &'static str },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("certificate and key do not fit together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the certificate and key in use: configured, issued by ACME,
/// or generated (until ACME has issued one, too).
pub fn cert_paths(config: &Config) -> (PathBuf, PathBuf) {
    if config.tls.cert.is_empty() {
        if config.acme.enabled() {
            let issued = crate::acme::certificate_path(&config.data_dir);
            if issued.exists() {
                // One file holds the chain and the key, so that a renewal
                // replaces both in one rename.
                return (issued.clone(), issued);
            }
        }
        self_signed_paths(config)
    } else {
        (
            PathBuf::from(&config.tls.cert),
            PathBuf::from(&config.tls.key),
        )
    }
}

fn self_signed_paths(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Checks that a configured certificate and key load and fit together
/// (`check-config`, reload); generates nothing.
pub fn check_configured(config: &Config) -> Result<(), TlsError> {
    if config.tls.cert.is_empty() {
        return Ok(());
    }
    let (cert, key) = cert_paths(config);
    load_pair(&cert, &key).map(|_| ())
}

/// Builds the server config, generating a self-signed pair first if needed.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = cert_paths(config);
    if config.tls.cert.is_empty() && !cert_path.exists() {
        generate_self_signed(&config.myhostname, &cert_path, &key_path)?;
    }
    let server = load_pair(&cert_path, &key_path)?;
    if let Some(validity) = leaf_certificate(&cert_path).and_then(|der| x509::validity(&der)) {
        crate::metrics::get().certificate_expiry(validity.not_after);
    }
    Ok(server)
}

/// The first certificate of a PEM chain file, DER.
pub fn leaf_certificate(path: &Path) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).ok()?.next()?.ok()
}

pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = cert_path.to_path_buf();
    let key_path = key_path.to_path_buf();
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|_| TlsError::Pem {
            path: cert_path.clone(),
            what: "certificate",
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem {
            path: cert_path.clone(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|_| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(tls))
}

/// Days a generated certificate is valid: 825, the longest Apple's clients
/// accept for a TLS server certificate.
const SELF_SIGNED_DAYS: i64 = 825;

/// A self-signed certificate a client can show its user: the subject is
/// `CN=myhostname`, the names are myhostname and localhost, and it is valid
/// from yesterday (clocks differ) for [`SELF_SIGNED_DAYS`].
fn self_signed(hostname: &str) -> Result<(String, String), rcgen::Error> {
    let mut params =
        rcgen::CertificateParams::new(vec![hostname.to_string(), "localhost".to_string()])?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, hostname);
    name.push(rcgen::DnType::OrganizationName, "Merpati self-signed");
    params.distinguished_name = name;
    let today = crate::rfc5322::now_unix().div_euclid(86_400);
    let date = |days: i64| {
        let (y, m, d) = crate::rfc5322::civil_from_days(days);
        rcgen::date_time_ymd(
            i32::try_from(y).unwrap_or(2000),
            u8::try_from(m).unwrap_or(1),
            u8::try_from(d).unwrap_or(1),
        )
    };
    params.not_before = date(today - 1);
    params.not_after = date(today + SELF_SIGNED_DAYS);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn generate_self_signed(hostname: &str, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let (cert_pem, key_pem) =
        self_signed(hostname).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        crate::perms::private_dir(dir, 0o700).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_private(key, key_pem.as_bytes(), 0o600)?;
    write_private(cert, cert_pem.as_bytes(), 0o640)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {hostname}");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::perms::write_private_file(path, bytes, mode).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
