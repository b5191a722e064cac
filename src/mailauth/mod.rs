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
pub mod headers;
pub mod keys;
pub mod sign;
pub mod srs;
pub mod verify;

use crate::config::Config;
use crate::live::Live;
use mail_auth::MessageAuthenticator;
use std::sync::Arc;

pub use verify::{Disposition, Inbound, Verdict};

/// The shared mail-authentication service.
pub struct MailAuth {
    authenticator: MessageAuthenticator,
    live: Arc<Live<Config>>,
}

impl MailAuth {
    /// `resolver` is the daemon's DNS resolver (see `dns::HickoryResolver::handle`).
    pub fn new(resolver: hickory_resolver::TokioResolver, live: Arc<Live<Config>>) -> Self {
        MailAuth {
            authenticator: MessageAuthenticator(resolver),
            live,
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
