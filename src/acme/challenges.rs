//! The answers to an authority's validation requests while an order is
//! open: HTTP-01 key authorizations by token (served by the web listener
//! at `/.well-known/acme-challenge/TOKEN`), and TLS-ALPN-01 certificates
//! by name (RFC 8737: offered only to a ClientHello that asks for the
//! `acme-tls/1` protocol).

use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// RFC 8737 §6.2: the ALPN protocol of TLS-ALPN-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// An order has at most a few dozen names; more answers than this are a
/// bug, not a reason to grow without bound.
const MAX_ANSWERS: usize = 100;

#[derive(Default)]
pub struct Challenges {
    http: Mutex<HashMap<String, String>>,
    tls_alpn: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl Challenges {
    /// The key authorization for an HTTP-01 token, while it is published.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        lock(&self.http).get(token).cloned()
    }

    /// The TLS-ALPN-01 config for the name a ClientHello asked for.
    pub fn tls_alpn_config(&self, server_name: Option<&str>) -> Option<Arc<ServerConfig>> {
        let name = server_name?.to_ascii_lowercase();
        lock(&self.tls_alpn).get(&name).cloned()
    }

    pub(super) fn publish_http(&self, token: &str, key_authorization: &str) {
        let mut map = lock(&self.http);
        if map.len() < MAX_ANSWERS {
            map.insert(token.to_string(), key_authorization.to_string());
        }
    }

    /// Makes and publishes the validation certificate for `name`: a
    /// self-signed one carrying the key authorization's digest in the
    /// critical acmeIdentifier extension.
    pub(super) fn publish_tls_alpn(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let config = validation_config(name, digest).map_err(|e| e.to_string())?;
        let mut map = lock(&self.tls_alpn);
        if map.len() < MAX_ANSWERS {
            map.insert(name.to_ascii_lowercase(), Arc::new(config));
        }
        Ok(())
    }

    /// Forgets every answer once the order is over.
    pub(super) fn clear(&self) {
        lock(&self.http).clear();
        lock(&self.tls_alpn).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn validation_config(
    name: &str,
    digest: &[u8],
) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider.key_provider.load_private_key(key)?;
    // Through a resolver, not with_single_cert: rustls refuses to load a
    // certificate with a critical extension it does not know, and the
    // acmeIdentifier one must be critical (RFC 8737 §3).
    let certified = CertifiedKey::new(vec![cert.der().clone()], signing_key);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(Arc::new(certified))));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(config)
}

/// The one validation certificate, whatever the ClientHello says.
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesServerCert for Always {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_what_was_published() {
        let c = Challenges::default();
        assert_eq!(c.http_answer("t1"), None);
        c.publish_http("t1", "t1.thumb");
        assert_eq!(c.http_answer("t1").as_deref(), Some("t1.thumb"));
        c.publish_tls_alpn("Mail.Example", &[7; 32]).unwrap();
        assert!(c.tls_alpn_config(Some("mail.example")).is_some());
        assert!(c.tls_alpn_config(Some("other.example")).is_none());
        assert!(c.tls_alpn_config(None).is_none());
        c.clear();
        assert_eq!(c.http_answer("t1"), None);
        assert!(c.tls_alpn_config(Some("mail.example")).is_none());
    }
}
