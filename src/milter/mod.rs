//! Milters (Postfix's `smtpd_milters`): each SMTP session talks to every
//! configured filter, one event per stage (connect, HELO, MAIL, RCPT,
//! DATA, the message), and the first filter that refuses decides. At the
//! end of the message the filters' changes are applied before the message
//! is queued. A filter that is down or breaks the protocol follows
//! `milter_default_action`; its default, tempfail, delays mail and never
//! drops it.
//!
//! Rooms: `proto` (the packets, sans-IO), `client` (one filter's
//! conversation), `edit` (applying the changes).

pub mod client;
pub mod edit;
pub mod proto;

use crate::config::{Milter as Settings, MilterDefaultAction};
use crate::smtp::proto::reply::Reply;
use client::{Client, Event, MilterError, Verdict};

/// Macro name/value pairs sent before an event.
pub type Macros = Vec<(String, String)>;

enum Slot {
    Live {
        client: Client,
        /// Said ACCEPT for the current message: no more events for it.
        accepted_message: bool,
    },
    /// Said ACCEPT at connect or HELO: nothing more for this session.
    Done,
    /// Unreachable or broken: `milter_default_action` applies from now on.
    Failed(String),
}

/// What the filters made of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Refuse the command (or the message) with this.
    pub refusal: Option<Reply>,
    /// DISCARD: accept the message and drop it.
    pub discard: bool,
    /// Put the message in the hold queue, for this reason.
    pub quarantine: Option<String>,
}

/// The message after the filters.
#[derive(Debug, Default)]
pub struct Filtered {
    pub outcome: Outcome,
    /// The changed message, when a filter changed anything.
    pub message: Option<Vec<u8>>,
}

/// The session's filters.
pub struct Milters {
    settings: Settings,
    slots: Vec<Slot>,
    in_message: bool,
}

impl Milters {
    /// Connects to every filter and sends the connect event.
    pub async fn start(
        settings: &Settings,
        macros: &Macros,
        hostname: &str,
        peer: std::net::SocketAddr,
    ) -> (Milters, Outcome) {
        let mut slots = Vec::new();
        for endpoint in &settings.smtpd_milters {
            slots.push(match Client::connect(endpoint, settings).await {
                Ok(client) => Slot::Live {
                    client,
                    accepted_message: false,
                },
                Err(e) => {
                    tracing::warn!("milter {endpoint}: {e}");
                    Slot::Failed(endpoint.clone())
                }
            });
        }
        let mut milters = Milters {
            settings: settings.clone(),
            slots,
            in_message: false,
        };
        let event = Event::Connect {
            macros,
            hostname,
            peer,
        };
        let outcome = milters.stage(&event).await;
        (milters, outcome)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub async fn helo(&mut self, name: &str) -> Outcome {
        self.stage(&Event::Helo(name)).await
    }

    /// MAIL FROM: the sender (in `<>`) and its ESMTP parameters.
    pub async fn mail(&mut self, macros: &Macros, args: &[String]) -> Outcome {
        self.abort().await;
        for slot in &mut self.slots {
            if let Slot::Live {
                accepted_message, ..
            } = slot
            {
                *accepted_message = false;
            }
        }
        self.in_message = true;
        self.stage(&Event::Mail { macros, args }).await
    }

    pub async fn rcpt(&mut self, macros: &Macros, args: &[String]) -> Outcome {
        self.stage(&Event::Rcpt { macros, args }).await
    }

    pub async fn data(&mut self) -> Outcome {
        self.stage(&Event::Data).await
    }

    /// The message: every filter sees it as it arrived; each filter's
    /// changes are applied in filter order. A refusal or DISCARD ends it;
    /// the filters after that one are told to forget the message.
    pub async fn message(
        &mut self,
        message: &[u8],
        envelope: &mut edit::Envelope,
        max_size: usize,
    ) -> Filtered {
        let (fields, body) = edit::split(message);
        let headers: Vec<(String, String)> = fields
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect();
        let mut changed: Option<Vec<u8>> = None;
        let mut outcome = Outcome::default();
        let mut stopped_at = None;
        for i in 0..self.slots.len() {
            let result = match self.slots.get_mut(i) {
                Some(Slot::Live {
                    client,
                    accepted_message: false,
                }) => client
                    .message(&headers, body, max_size)
                    .await
                    .map(|(v, c)| (v, client.allowed(c))),
                Some(Slot::Failed(name)) => {
                    let name = name.clone();
                    self.default_action(&name, &mut outcome);
                    continue;
                }
                _ => continue,
            };
            match result {
                // At the end of the message ACCEPT and CONTINUE mean the
                // same: this message is done (the filter stays for the next).
                Ok((Verdict::Accept | Verdict::Continue, changes)) => {
                    if !changes.is_empty() {
                        let current = changed.as_deref().unwrap_or(message);
                        changed = Some(edit::apply(current, &changes, envelope, max_size));
                    }
                }
                Ok((verdict, _)) => {
                    self.judge(i, &verdict, &mut outcome);
                }
                Err(e) => self.fail(i, e, &mut outcome),
            }
            if outcome.refusal.is_some() || outcome.discard {
                stopped_at = Some(i);
                break;
            }
        }
        self.in_message = false;
        if let Some(i) = stopped_at {
            self.abort_from(i + 1).await;
            return Filtered {
                outcome,
                message: None,
            };
        }
        if let Some(reason) = envelope.quarantine.take() {
            outcome.quarantine = Some(reason);
        }
        Filtered {
            outcome,
            message: changed,
        }
    }

    /// Tells the filters from `first` on to forget the message.
    async fn abort_from(&mut self, first: usize) {
        for i in first..self.slots.len() {
            let failed = match self.slots.get_mut(i) {
                Some(Slot::Live {
                    client,
                    accepted_message: false,
                }) => client.abort().await.err(),
                _ => None,
            };
            if let Some(e) = failed {
                let mut ignored = Outcome::default();
                self.fail(i, e, &mut ignored);
            }
        }
    }

    /// RSET (or a new MAIL): filters forget the message in progress.
    pub async fn abort(&mut self) {
        if !std::mem::take(&mut self.in_message) {
            return;
        }
        for i in 0..self.slots.len() {
            let failed = match self.slots.get_mut(i) {
                Some(Slot::Live { client, .. }) => client.abort().await.err(),
                _ => None,
            };
            if let Some(e) = failed {
                let mut ignored = Outcome::default();
                self.fail(i, e, &mut ignored);
            }
        }
    }

    /// The end of the session.
    pub async fn quit(self) {
        for slot in self.slots {
            if let Slot::Live { client, .. } = slot {
                client.quit().await;
            }
        }
    }

    /// Sends one stage's event to every filter still listening.
    async fn stage(&mut self, event: &Event<'_>) -> Outcome {
        let mut outcome = Outcome::default();
        for i in 0..self.slots.len() {
            let result = match self.slots.get_mut(i) {
                Some(Slot::Live {
                    client,
                    accepted_message: false,
                }) => client.stage(event).await,
                // A broken filter's default action answers each MAIL (and
                // the message); HELO and connect go on, so the client sees
                // the reason where it can act on it.
                Some(Slot::Failed(name)) if matches!(event, Event::Mail { .. }) => {
                    let name = name.clone();
                    self.default_action(&name, &mut outcome);
                    if outcome.refusal.is_some() {
                        break;
                    }
                    continue;
                }
                _ => continue,
            };
            match result {
                Ok(verdict) => {
                    if self.judge(i, &verdict, &mut outcome) {
                        break;
                    }
                }
                Err(e) => self.fail(i, e, &mut outcome),
            }
            if outcome.refusal.is_some() {
                break;
            }
        }
        outcome
    }

    /// Records filter `i`'s verdict; true when it decides for everyone.
    fn judge(&mut self, i: usize, verdict: &Verdict, outcome: &mut Outcome) -> bool {
        match verdict {
            Verdict::Continue => false,
            Verdict::Accept => {
                if let Some(Slot::Live {
                    accepted_message, ..
                }) = self.slots.get_mut(i)
                {
                    if self.in_message {
                        *accepted_message = true;
                    } else if let Some(slot) = self.slots.get_mut(i) {
                        *slot = Slot::Done;
                    }
                }
                false
            }
            Verdict::Reject => {
                outcome.refusal = Some(Reply::new(550, "5.7.1", "Command rejected"));
                true
            }
            Verdict::Tempfail => {
                outcome.refusal = Some(tempfail());
                true
            }
            Verdict::Discard => {
                outcome.discard = true;
                true
            }
            Verdict::Reply(text) => {
                outcome.refusal = Some(reply_of(text));
                true
            }
        }
    }

    /// Filter `i` broke: log it, mark it failed, apply the default action.
    fn fail(&mut self, i: usize, e: MilterError, outcome: &mut Outcome) {
        let name = match self.slots.get(i) {
            Some(Slot::Live { client, .. }) => client.name.clone(),
            Some(Slot::Failed(name)) => name.clone(),
            _ => String::from("milter"),
        };
        tracing::warn!(
            "milter {name}: {e}; milter_default_action = {:?}",
            self.settings.milter_default_action
        );
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot::Failed(name.clone());
        }
        self.default_action(&name, outcome);
    }

    fn default_action(&self, name: &str, outcome: &mut Outcome) {
        match self.settings.milter_default_action {
            MilterDefaultAction::Accept => {}
            MilterDefaultAction::Tempfail => outcome.refusal = Some(tempfail()),
            MilterDefaultAction::Reject => {
                outcome.refusal = Some(Reply::new(550, "5.7.1", "Command rejected"));
            }
            MilterDefaultAction::Quarantine => {
                outcome.quarantine = Some(format!("milter {name} unavailable"));
            }
        }
    }
}

fn tempfail() -> Reply {
    Reply::new(451, "4.7.1", "Service unavailable - try again later")
}

/// A filter's own reply (`550 5.7.1 text`, possibly multi-line); anything
/// that is not a 4xx/5xx line counts as a temporary failure.
fn reply_of(text: &str) -> Reply {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let code: u16 = first.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    // 421 would have to close the session; the filter's wish is kept as
    // a temporary refusal of this command.
    if !(400..600).contains(&code) || code == 421 {
        return tempfail();
    }
    let rest = first.get(4..).unwrap_or_default();
    let (status, mut message) = match rest.split_once(' ') {
        Some((s, m)) if enhanced_status(s, code) => (s.to_string(), m.to_string()),
        _ => (
            if code >= 500 { "5.7.1" } else { "4.7.1" }.to_string(),
            rest.to_string(),
        ),
    };
    for more in lines {
        message.push(' ');
        message.push_str(
            more.get(4..)
                .unwrap_or_default()
                .trim_start_matches(&status)
                .trim(),
        );
    }
    Reply::new(code, &status, message.trim().to_string())
}

/// `5.7.1`-shaped, with the class of `code` (so `Reply::new` takes it).
fn enhanced_status(text: &str, code: u16) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.first().is_some_and(|c| c.len() == 1)
        && parts.first().and_then(|c| c.parse::<u16>().ok()) == Some(code / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_replies_become_smtp_replies() {
        let r = reply_of("554 5.7.1 Spam detected");
        assert_eq!(
            (r.code, r.first_line().as_str()),
            (554, "554 5.7.1 Spam detected")
        );
        let r = reply_of("450 try later");
        assert_eq!(r.first_line(), "450 4.7.1 try later");
        assert_eq!(reply_of("250 ok").code, 451);
        assert_eq!(
            reply_of("550 4.7.1 mixed up").first_line(),
            "550 5.7.1 4.7.1 mixed up"
        );
        assert_eq!(
            reply_of("550 5.x.1 odd").first_line(),
            "550 5.7.1 5.x.1 odd"
        );
        assert_eq!(reply_of("").code, 451);
    }
}
