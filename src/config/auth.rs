//! `[auth]`: how logins are checked.

use super::units::Span;
use serde::{Deserialize, Serialize};

/// `[auth]`: the verified-credentials cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// How long a password, once verified with Argon2, is accepted again
    /// from a keyed digest without the Argon2 work (Dovecot's
    /// `auth_cache_ttl`). `0s` turns the cache off.
    pub cache_ttl: Span,
    /// Accounts remembered at once; the oldest entry makes room.
    pub cache_size: usize,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            cache_ttl: Span::secs(3600),
            cache_size: 10_000,
        }
    }
}
