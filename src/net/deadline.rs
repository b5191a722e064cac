//! The deadline for getting past the login (or, on port 25, to the first
//! MAIL): idle timeouts restart with every byte, so a client sending one
//! byte a second would otherwise hold a connection for ever without ever
//! logging in. Hundreds of such clients were all kept before this.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct LoginDeadline {
    at: Option<Instant>,
}

impl LoginDeadline {
    /// Starts now; `Duration::ZERO` means no deadline.
    pub fn start(limit: Duration) -> Self {
        LoginDeadline {
            at: (!limit.is_zero()).then(|| Instant::now() + limit),
        }
    }

    /// The client got past it (logged in, or sent MAIL).
    pub fn clear(&mut self) {
        self.at = None;
    }

    /// How long the next read may wait: the idle timeout, or less when the
    /// deadline is nearer; the flag says the deadline is what limits it.
    pub fn limit(&self, idle: Duration) -> (Duration, bool) {
        match self.at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left < idle {
                    (left, true)
                } else {
                    (idle, false)
                }
            }
            None => (idle, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_shortens_reads_until_cleared() {
        let mut d = LoginDeadline::start(Duration::from_secs(60));
        assert_eq!(
            d.limit(Duration::from_secs(300)),
            (Duration::from_secs(60), true)
        );
        assert_eq!(
            d.limit(Duration::from_secs(10)),
            (Duration::from_secs(10), false)
        );
        tokio::time::advance(Duration::from_secs(55)).await;
        assert_eq!(
            d.limit(Duration::from_secs(300)),
            (Duration::from_secs(5), true)
        );
        d.clear();
        assert_eq!(
            d.limit(Duration::from_secs(300)),
            (Duration::from_secs(300), false)
        );
        let none = LoginDeadline::start(Duration::ZERO);
        assert_eq!(
            none.limit(Duration::from_secs(7)),
            (Duration::from_secs(7), false)
        );
    }
}
