//! `[http]`: the web listener.

use super::units::{Bytes, Span};
use serde::{Deserialize, Serialize};

/// `[http]`: the web listener (autoconfig and autodiscover, health).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Plain HTTP: autoconfig, autodiscover and health answered here, every
    /// other path redirected to HTTPS.
    pub listen: Vec<String>,
    /// HTTPS with the daemon's certificate.
    pub tls_listen: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Time to send a request's header section.
    pub header_timeout: Span,
    /// Longest a connection stays open (keep-alive included).
    pub connection_timeout: Span,
    /// Largest request body accepted (an autodiscover POST is a few
    /// hundred octets).
    pub max_body: Bytes,
    /// Who may read `/metrics` besides `mynetworks` (addresses or CIDRs).
    pub metrics_allow: Vec<String>,
    /// RFC 8461 MTA-STS policy served at
    /// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`: "none",
    /// "testing" or "enforce".
    pub mta_sts_mode: MtaStsMode,
    /// The policy's `max_age`.
    pub mta_sts_max_age: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtaStsMode {
    None,
    Testing,
    Enforce,
}

impl MtaStsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MtaStsMode::None => "none",
            MtaStsMode::Testing => "testing",
            MtaStsMode::Enforce => "enforce",
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: vec!["0.0.0.0:80".into(), "[::]:80".into()],
            tls_listen: vec!["0.0.0.0:443".into(), "[::]:443".into()],
            max_connections: 1000,
            max_connections_per_client: 50,
            header_timeout: Span::secs(30),
            connection_timeout: Span::secs(300),
            max_body: Bytes(64 * 1024),
            metrics_allow: Vec::new(),
            mta_sts_mode: MtaStsMode::Testing,
            mta_sts_max_age: Span::secs(7 * 86_400),
        }
    }
}
