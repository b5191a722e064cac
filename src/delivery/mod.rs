//! Delivery agents: the queue manager hands each a request and gets one
//! outcome per recipient back.

pub mod local;
pub mod notify;
pub mod records;
pub mod relay;
pub mod sieve;
pub mod vacation;

/// What happened to one final recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; the text says where.
    Sent(String),
    /// Try again later (enhanced status 4.x.x and reason).
    Deferred(String),
    /// Permanent failure (enhanced status 5.x.x and reason).
    Bounced(String),
}

impl Outcome {
    /// The enhanced status code at the start of the reason, for the log's
    /// `dsn=` field.
    pub fn dsn(&self) -> &str {
        match self {
            Outcome::Sent(_) => "2.0.0",
            Outcome::Deferred(r) | Outcome::Bounced(r) => {
                r.split_whitespace().next().unwrap_or("4.0.0")
            }
        }
    }
}
