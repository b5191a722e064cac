//! Integration tests: the real `merpati` binary over loopback sockets, and
//! real clients (Python's smtplib, swaks) where they exist. One test binary
//! (build time), one module per area.

mod autoconfig;
mod backup;
mod certificates;
mod config_cli;
mod content_checks;
mod crash_safety;
mod disk_full;
mod dns_server;
mod doctor;
mod greylisting;
mod hardening;
mod harness;
mod imap;
mod imap_client;
mod imap_conformance;
mod imap_sort;
mod imap_utf8;
mod import_dovecot;
mod log_tools;
mod mailauth_forward;
mod mailauth_inbound;
mod mailauth_outbound;
mod managesieve;
mod milters;
mod pop3;
mod queue_admin;
mod rate_limits;
mod relay;
mod relay_client;
mod restrictions;
mod routing;
mod sendmail;
mod sieve;
mod smtp_clients;
mod smtp_protocol;
mod smtp_session;
mod spam_filter;
mod submission;
mod webmail;
