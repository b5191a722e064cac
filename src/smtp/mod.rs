//! SMTP: the sans-IO protocol layer (`proto`) and the server sessions.

pub mod client;
pub mod proto;
pub mod server;
