//! Mail authentication: SPF, DKIM, DMARC and ARC checks of mail coming in
//! ([`verify`]), DKIM signatures on mail going out ([`sign`], keys in
//! [`keys`]), SRS for forwarded mail ([`srs`]) and ARC seals ([`arc`]).
//! Postfix gets these from milters (OpenDKIM, OpenDMARC, postsrsd); here
//! they are functions of (message, envelope, DNS) that the SMTP session,
//! cleanup and the queue manager call. No SMTP code lives here.
//!
//! The cryptography and the record parsers are mail-auth's (Stalwart's
//! library); DNS goes through the same hickory resolver, `[dns]` config and
//! cache as delivery.

pub mod admin;
pub mod arc;
pub mod headers;
pub mod keys;
pub mod sign;
pub mod spf_void;
pub mod srs;
pub mod verify;

use crate::config::Config;
use crate::live::Live;
use mail_auth::MessageAuthenticator;
use std::sync::Arc;

pub use verify::{Disposition, Inbound, Results, Verdict};

/// The shared mail-authentication service.
pub struct MailAuth {
    authenticator: MessageAuthenticator,
    live: Arc<Live<Config>>,
    /// None when the secret cannot be read or made (then no rewriting).
    srs: Option<srs::Srs>,
}

impl MailAuth {
    /// `resolver` is the daemon's DNS resolver (see `dns::HickoryResolver::handle`).
    pub fn new(resolver: hickory_resolver::TokioResolver, live: Arc<Live<Config>>) -> Self {
        let data_dir = live.get().data_dir.clone();
        let srs = match srs::Srs::load_or_create(&data_dir) {
            Ok(srs) => Some(srs),
            Err(e) => {
                tracing::warn!("SRS disabled: cannot read or make its secret: {e}");
                None
            }
        };
        MailAuth {
            authenticator: MessageAuthenticator(resolver),
            live,
            srs,
        }
    }

    /// The configuration in force now (reload replaces it).
    fn config(&self) -> Arc<Config> {
        self.live.get()
    }

    /// The authserv-id of our Authentication-Results fields.
    pub fn authserv_id(&self) -> String {
        let config = self.config();
        if config.mailauth.authserv_id.is_empty() {
            config.myhostname.clone()
        } else {
            config.mailauth.authserv_id.clone()
        }
    }
}

fn today() -> u64 {
    u64::try_from(crate::rfc5322::now_unix().div_euclid(86_400)).unwrap_or(0)
}

impl MailAuth {
    /// The domain of our SRS addresses (and the fallback ARC domain).
    pub fn srs_domain(config: &Config) -> String {
        if config.mailauth.srs_domain.is_empty() {
            config.myorigin.clone()
        } else {
            config.mailauth.srs_domain.to_ascii_lowercase()
        }
    }

    /// The envelope sender for a copy forwarded to another domain: the SRS
    /// form of `sender`, or `None` to keep it (SRS off, null sender).
    /// The caller has checked that `sender` is not in a local domain.
    pub fn srs_forward(&self, sender: &str) -> Option<String> {
        let config = self.config();
        if !config.mailauth.srs || sender.is_empty() || !sender.contains('@') {
            return None;
        }
        let srs = self.srs.as_ref()?;
        Some(srs.forward(sender, &Self::srs_domain(&config), today()))
    }

    /// For a recipient in our SRS domain whose local part is an SRS
    /// address: the address it stands for, or why it is refused. `None`
    /// for every other address.
    pub fn srs_reverse(&self, local: &str, domain: &str) -> Option<Result<String, srs::SrsError>> {
        let config = self.config();
        if !srs::is_srs(local) || !domain.eq_ignore_ascii_case(&Self::srs_domain(&config)) {
            return None;
        }
        let Some(engine) = self.srs.as_ref() else {
            return Some(Err(srs::SrsError::BadHash));
        };
        let max_age = config.mailauth.srs_max_age.0.as_secs() / 86_400;
        Some(engine.reverse(local, today(), max_age))
    }
}
