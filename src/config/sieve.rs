//! `[sieve]`: users' Sieve scripts, run at local delivery.

use super::units::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sieve {
    /// Largest script accepted (Pigeonhole's `sieve_max_script_size`).
    pub max_script_size: Bytes,
    /// Scripts one user may keep (`sieve_quota_max_scripts`).
    pub max_scripts: usize,
    /// `redirect`s one run may make (`sieve_max_redirects`).
    pub max_redirects: usize,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            max_script_size: Bytes(1 << 20),
            max_scripts: 20,
            max_redirects: 4,
        }
    }
}
