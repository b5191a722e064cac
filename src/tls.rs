//! Certificates and rustls configs. When no certificate is configured, a
//! self-signed one for `myhostname` is generated at first start under
//! `<data_dir>/tls`, so STARTTLS works without any set-up. Only TLS 1.2 and
//! 1.3 are enabled.

use crate::config::Config;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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

/// Paths of the certificate and key in use: configured, or generated.
pub fn cert_paths(config: &Config) -> (PathBuf, PathBuf) {
    if config.tls.cert.is_empty() {
        let dir = config.data_dir.join("tls");
        (dir.join("cert.pem"), dir.join("key.pem"))
    } else {
        (
            PathBuf::from(&config.tls.cert),
            PathBuf::from(&config.tls.key),
        )
    }
}

/// Builds the server config, generating a self-signed pair first if needed.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = cert_paths(config);
    if config.tls.cert.is_empty() && !cert_path.exists() {
        generate_self_signed(&config.myhostname, &cert_path, &key_path)?;
    }
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

fn generate_self_signed(hostname: &str, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_private(key, generated.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_private(cert, generated.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {hostname}");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Temp file and rename: a crash never leaves a torn PEM file that would
    // stop the next start.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
