//! `[acme]`: certificates from an ACME (RFC 8555) authority.

use super::units::Span;
use serde::{Deserialize, Serialize};

/// `[acme]`: off (the self-signed certificate) while `directory` is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Acme {
    /// The authority's directory URL; "letsencrypt" and
    /// "letsencrypt-staging" name Let's Encrypt's. Empty: ACME is off.
    pub directory: String,
    /// Contact addresses given to the authority (`mailto:` added).
    pub contact: Vec<String>,
    /// Names besides `myhostname` on the certificate (`mta-sts.DOMAIN`,
    /// `autoconfig.DOMAIN`...).
    pub names: Vec<String>,
    /// "http-01" (answered on the `[http] listen` port, 80) or
    /// "tls-alpn-01" (answered on `[http] tls_listen`, 443).
    pub challenge: Challenge,
    /// Renew this long before the certificate expires.
    pub renew_before: Span,
    /// The first wait after a failed attempt; doubled after each further
    /// failure up to `retry_max`.
    pub retry_min: Span,
    pub retry_max: Span,
    /// Longest an attempt may take (validation, issuance) before it counts
    /// as failed.
    pub order_timeout: Span,
    /// PEM roots to trust for the directory's HTTPS besides none (a private
    /// CA, Pebble in tests); empty: the system's roots.
    pub ca_file: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl Default for Acme {
    fn default() -> Self {
        Acme {
            directory: String::new(),
            contact: Vec::new(),
            names: Vec::new(),
            challenge: Challenge::Http01,
            renew_before: Span::secs(30 * 86_400),
            retry_min: Span::secs(600),
            retry_max: Span::secs(86_400),
            order_timeout: Span::secs(300),
            ca_file: String::new(),
        }
    }
}

impl Acme {
    pub fn enabled(&self) -> bool {
        !self.directory.is_empty()
    }

    /// The directory URL, with the well-known names expanded.
    pub fn directory_url(&self) -> &str {
        match self.directory.as_str() {
            "letsencrypt" => "https://acme-v02.api.letsencrypt.org/directory",
            "letsencrypt-staging" => "https://acme-staging-v02.api.letsencrypt.org/directory",
            other => other,
        }
    }
}

impl Acme {
    /// What `validate` refuses: ACME with a configured certificate, a
    /// challenge with no listener to answer it, a bad name or directory.
    pub fn problems(&self, config: &super::Config) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !self.enabled() {
            return problems;
        }
        let url = self.directory_url();
        if !url.starts_with("https://") {
            problems.push(("acme.directory", format!("`{url}` is not an https:// URL")));
        }
        if !config.tls.cert.is_empty() {
            problems.push((
                "acme.directory",
                "ACME and tls.cert exclude each other: empty one of them".into(),
            ));
        }
        let (listener, key) = match self.challenge {
            Challenge::Http01 => (&config.http.listen, "http.listen"),
            Challenge::TlsAlpn01 => (&config.http.tls_listen, "http.tls_listen"),
        };
        if listener.is_empty() {
            problems.push((
                "acme.challenge",
                format!(
                    "{} needs {key} (the authority connects there)",
                    self.challenge.as_str()
                ),
            ));
        }
        for name in &self.names {
            if let Err(e) = super::net::check_hostname(name) {
                problems.push(("acme.names", format!("`{name}`: {e}")));
            }
        }
        if self.retry_min.0.is_zero() || self.retry_min.0 > self.retry_max.0 {
            problems.push((
                "acme.retry_min",
                "must be above 0 and at most acme.retry_max".into(),
            ));
        }
        if self.order_timeout.0.is_zero() {
            problems.push(("acme.order_timeout", "must be above 0".into()));
        }
        problems
    }
}
