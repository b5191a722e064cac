//! Merpati: one async daemon that does the job of a Postfix + Dovecot pair.
//!
//! See `docs/architecture.md` for how the modules below hand work to each
//! other (smtpd -> cleanup -> qmgr -> local delivery -> store).

pub mod acme;
pub mod address;
pub mod admin;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bounce;
pub mod checks;
pub mod cleanup;
pub mod config;
pub mod control;
pub mod delivery;
pub mod diskspace;
pub mod dns;
pub mod doctor;
pub mod escape;
pub mod html;
pub mod http;
pub mod imap;
pub mod import;
pub mod live;
pub mod logging;
pub mod login_cache;
pub mod mailauth;
pub mod managesieve;
pub mod metrics;
pub mod milter;
pub mod net;
pub mod password;
pub mod perms;
pub mod policy;
pub mod pop3;
pub mod queue;
pub mod rewrite;
pub mod rfc5322;
pub mod sendmail;
pub mod sieve;
pub mod smtp;
pub mod spam;
pub mod store;
pub mod tables;
pub mod tls;
pub mod webmail;
