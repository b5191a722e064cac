//! `[restrictions]`: Postfix's SMTP access restrictions under Postfix's own
//! names (smtpd_*_restrictions and the reply codes they use), with
//! Postfix 3.x's defaults. See `policy` for what each restriction does.

use super::units::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restrictions {
    /// Each list is a sequence of restriction names and their arguments,
    /// as in main.cf (`"check_client_access cidr:/etc/merpati/clients"`,
    /// or the two words as separate strings).
    pub smtpd_client_restrictions: Vec<String>,
    pub smtpd_helo_restrictions: Vec<String>,
    pub smtpd_sender_restrictions: Vec<String>,
    pub smtpd_relay_restrictions: Vec<String>,
    pub smtpd_recipient_restrictions: Vec<String>,
    pub smtpd_data_restrictions: Vec<String>,
    pub smtpd_end_of_data_restrictions: Vec<String>,
    /// Evaluate client, HELO and sender restrictions at RCPT time, so that
    /// the log shows the recipient and clients that ignore a refusal at
    /// connect time cannot tell (Postfix's default).
    pub smtpd_delay_reject: bool,
    /// Refuse MAIL before HELO/EHLO.
    pub smtpd_helo_required: bool,
    /// Look up the client's name (PTR, then forward-confirmed), for
    /// `Received:`, the log and the hostname restrictions.
    pub smtpd_peername_lookup: bool,
    /// One request to a `check_policy_service` server.
    pub smtpd_policy_service_timeout: Span,
    /// The reply when a policy server cannot be asked.
    pub smtpd_policy_service_default_action: String,
    pub access_map_reject_code: u16,
    pub access_map_defer_code: u16,
    pub maps_rbl_reject_code: u16,
    pub unknown_client_reject_code: u16,
    pub unknown_hostname_reject_code: u16,
    pub unknown_address_reject_code: u16,
    pub invalid_hostname_reject_code: u16,
    pub non_fqdn_reject_code: u16,
    pub relay_domains_reject_code: u16,
    pub defer_code: u16,
    pub reject_code: u16,
}

impl Default for Restrictions {
    fn default() -> Self {
        Restrictions {
            smtpd_client_restrictions: Vec::new(),
            smtpd_helo_restrictions: Vec::new(),
            smtpd_sender_restrictions: Vec::new(),
            smtpd_relay_restrictions: vec![
                "permit_mynetworks".into(),
                "permit_sasl_authenticated".into(),
                "defer_unauth_destination".into(),
            ],
            smtpd_recipient_restrictions: Vec::new(),
            smtpd_data_restrictions: Vec::new(),
            smtpd_end_of_data_restrictions: Vec::new(),
            smtpd_delay_reject: true,
            smtpd_helo_required: false,
            smtpd_peername_lookup: true,
            smtpd_policy_service_timeout: Span::secs(100),
            smtpd_policy_service_default_action: "451 4.3.5 Server configuration problem".into(),
            access_map_reject_code: 554,
            access_map_defer_code: 450,
            maps_rbl_reject_code: 554,
            unknown_client_reject_code: 450,
            unknown_hostname_reject_code: 450,
            unknown_address_reject_code: 450,
            invalid_hostname_reject_code: 501,
            non_fqdn_reject_code: 504,
            relay_domains_reject_code: 554,
            defer_code: 450,
            reject_code: 554,
        }
    }
}
