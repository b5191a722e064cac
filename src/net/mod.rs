//! Networking shared by every protocol: the stream that may turn into TLS
//! mid-session, the accept loop with its connection limits, and the
//! per-client counters (Postfix's anvil).

pub mod anvil;
pub mod deadline;
pub mod listener;
pub mod stream;
