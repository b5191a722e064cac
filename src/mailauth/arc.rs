//! ARC sealing (RFC 8617) of mail we forward to another domain: the next
//! hop learns what our checks found while the message was still as its
//! author sent it, and can trust it over the SPF/DMARC failure that
//! forwarding causes.
//!
//! The checks are run again at forwarding time on the queued message (the
//! client address and HELO come from the queue file); the seal is made
//! with the RSA signing key of the forwarding domain (ARC defines
//! rsa-sha256 only).

use super::MailAuth;
use super::keys::{self, Algorithm, SigningKey, State};
use super::verify::Inbound;
use mail_auth::AuthenticatedMessage;
use mail_auth::arc::ArcSealer;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::Canonicalization;
use std::net::IpAddr;

/// Header fields the ARC-Message-Signature covers when present.
const SEALED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "DKIM-Signature",
];

/// Who handed us the message being forwarded.
pub struct Origin<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    pub sender: &'a str,
}

impl MailAuth {
    /// `message` with an ARC set on top, sealed for the first of
    /// `domains` that has an RSA signing key; `None` when sealing is off,
    /// no key is found, or the chain it carries failed (cv=fail cannot be
    /// sealed over).
    pub async fn arc_seal(
        &self,
        message: &[u8],
        origin: Origin<'_>,
        domains: &[String],
    ) -> Option<Vec<u8>> {
        let config = self.config();
        if !config.mailauth.arc_seal {
            return None;
        }
        let (domain, selector, key) = domains.iter().find_map(|d| rsa_key(&config.data_dir, d))?;
        let parsed = AuthenticatedMessage::parse(message)?;
        let inbound = Inbound {
            ip: origin.ip,
            helo: origin.helo,
            sender: origin.sender,
            message,
        };
        let checks = tokio::time::timeout(
            config.mailauth.dns_budget.0,
            self.run_checks(&parsed, inbound, 0, &config.myhostname),
        )
        .await
        .ok()?;
        if !checks.arc.can_be_sealed() {
            tracing::info!("not ARC-sealing: the message's chain failed");
            return None;
        }
        let authserv_id = self.authserv_id();
        let results = checks.results(&authserv_id, inbound, &parsed);
        let fields = super::headers::fields(message);
        let present: Vec<String> = SEALED
            .iter()
            .filter(|name| {
                fields
                    .iter()
                    .any(|f| f.name(message).eq_ignore_ascii_case(name.as_bytes()))
            })
            .map(|n| n.to_string())
            .collect();
        let sealed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ArcSealer::from_key(key)
                .domain(domain.clone())
                .selector(selector.clone())
                .headers(present)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .seal(&parsed, &results, &checks.arc)
                .map(|set| set.to_header())
        }));
        match sealed {
            Ok(Ok(header)) => {
                let mut out = header.into_bytes();
                out.extend_from_slice(message);
                Some(out)
            }
            Ok(Err(e)) => {
                tracing::warn!("ARC sealing for {domain} failed: {e}");
                None
            }
            Err(_) => {
                tracing::error!("ARC sealing for {domain} panicked; forwarded unsealed");
                None
            }
        }
    }
}

fn rsa_key(
    data_dir: &std::path::Path,
    domain: &str,
) -> Option<(
    String,
    String,
    mail_auth::common::crypto::RsaKey<mail_auth::common::crypto::Sha256>,
)> {
    let file = keys::list(data_dir, Some(domain))
        .ok()?
        .into_iter()
        .find(|k| k.algorithm == Algorithm::Rsa && k.state == State::Signing)?;
    match keys::load(&file) {
        Ok(SigningKey::Rsa(key)) => Some((file.domain, file.selector, key)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("ARC key not used: {e}");
            None
        }
    }
}
