//! `[sieve]`: users' Sieve scripts, run at local delivery.

use super::units::{Bytes, Span};
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
    /// Actions one run may take (`sieve_max_actions`).
    pub max_actions: usize,
    /// Tests and commands one run may evaluate (Pigeonhole bounds CPU
    /// time; a count is the same bound without a clock).
    pub max_steps: usize,
    /// RFC 5230 `vacation`: the period without `:days`/`:seconds`...
    pub vacation_default_period: Span,
    /// ...and the bounds a script's period is brought within
    /// (`sieve_vacation_min_period`, `sieve_vacation_max_period`).
    pub vacation_min_period: Span,
    pub vacation_max_period: Span,
    /// Senders remembered per user (the oldest are forgotten first).
    pub vacation_max_senders: usize,
    /// RFC 7352 `duplicate`: how long an ID is remembered without
    /// `:seconds`, the longest a script may ask, and IDs kept per user.
    pub duplicate_default_period: Span,
    pub duplicate_max_period: Span,
    pub duplicate_max_entries: usize,
    /// Scripts `include`d within each other, at most
    /// (`sieve_include_max_nesting_depth`).
    pub max_include_depth: usize,
    /// `addheader`/`deleteheader` one run may carry out.
    pub max_header_edits: usize,
    /// Where `include :global "name"` finds `name.sieve`; "" for none.
    pub global_dir: String,
    /// The administrator's scripts run before every user's own, and after
    /// it (Pigeonhole's `sieve_before`, `sieve_after`): file paths.
    pub before: Vec<String>,
    pub after: Vec<String>,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            max_script_size: Bytes(1 << 20),
            max_scripts: 20,
            max_redirects: 4,
            max_actions: 32,
            max_steps: 100_000,
            vacation_default_period: Span::secs(7 * 86_400),
            vacation_min_period: Span::secs(86_400),
            vacation_max_period: Span::secs(90 * 86_400),
            vacation_max_senders: 10_000,
            duplicate_default_period: Span::secs(7 * 86_400),
            duplicate_max_period: Span::secs(30 * 86_400),
            duplicate_max_entries: 10_000,
            max_include_depth: 10,
            max_header_edits: 64,
            global_dir: String::new(),
            before: Vec::new(),
            after: Vec::new(),
        }
    }
}

impl Sieve {
    pub fn limits(&self) -> crate::sieve::eval::Limits {
        crate::sieve::eval::Limits {
            max_redirects: self.max_redirects,
            max_actions: self.max_actions,
            max_steps: self.max_steps,
            max_include_depth: self.max_include_depth,
            max_header_edits: self.max_header_edits,
        }
    }
}

/// `[managesieve]`: the ManageSieve server (RFC 5804), where mail clients
/// and the webmail upload scripts. STARTTLS on the one port (the RFC has
/// no implicit-TLS port).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManageSieve {
    pub listen: Vec<String>,
    /// Allow passwords without TLS from loopback clients; never from
    /// anywhere else.
    pub plaintext_auth_on_loopback: bool,
    pub max_connections: usize,
    /// Connections from one address before login.
    pub max_connections_per_client: usize,
    /// Logged-in sessions of one account from one address.
    pub max_userip_connections: usize,
    pub idle_timeout: Span,
    /// Time from connect to a successful login; "0s" for none.
    pub login_timeout: Span,
    /// Longest command line outside literals, in octets.
    pub line_length_limit: usize,
    /// Bad commands before the session is closed.
    pub max_bad_commands: u32,
}

impl Default for ManageSieve {
    fn default() -> Self {
        ManageSieve {
            listen: vec!["0.0.0.0:4190".into(), "[::]:4190".into()],
            plaintext_auth_on_loopback: true,
            max_connections: 1000,
            max_connections_per_client: 50,
            max_userip_connections: 10,
            idle_timeout: Span::secs(30 * 60),
            login_timeout: Span::secs(120),
            line_length_limit: 8192,
            max_bad_commands: 10,
        }
    }
}
