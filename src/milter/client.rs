//! One filter's conversation for one SMTP session: connect and negotiate,
//! then one event per SMTP stage, each answered within its timeout. A
//! filter that cannot be reached, times out or speaks nonsense is marked
//! failed; the caller then applies `milter_default_action`.

use super::proto::{self, Command, Response, action, step};
use crate::config::Milter as Settings;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// What a filter said about one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Accept: no more events for this message (or, said at connect or
    /// HELO, for the whole session).
    Accept,
    Reject,
    Tempfail,
    Discard,
    /// `SMFIR_REPLYCODE`: the filter's own reply line(s).
    Reply(String),
}

/// An SMTP stage, as the filters hear of it.
pub enum Event<'a> {
    Connect {
        macros: &'a [(String, String)],
        hostname: &'a str,
        peer: std::net::SocketAddr,
    },
    Helo(&'a str),
    Mail {
        macros: &'a [(String, String)],
        args: &'a [String],
    },
    Rcpt {
        macros: &'a [(String, String)],
        args: &'a [String],
    },
    Data,
}

/// A change the filter asks for at the end of the message: one of its
/// modification responses (SMFIR_ADDHEADER ... SMFIR_QUARANTINE).
pub type Change = Response;

#[derive(Debug, thiserror::Error)]
pub enum MilterError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Proto(#[from] proto::ProtoError),
    #[error("unexpected response {0:?}")]
    Unexpected(Response),
    #[error("asked for {0} changes, more than allowed")]
    TooManyChanges(usize),
}

/// Changes one message may ask for, at most.
const MAX_CHANGES: usize = 10_000;

pub struct Client {
    /// `inet:host:port` or `unix:/path`, for log lines.
    pub name: String,
    stream: Box<dyn Io>,
    /// The steps the filter negotiated away or answers without a reply.
    steps: u32,
    /// The changes it said it may make (SMFIF_*): others are ignored.
    actions: u32,
    command_timeout: Duration,
    content_timeout: Duration,
}

impl Client {
    /// Connects to `endpoint` and negotiates version 6.
    pub async fn connect(endpoint: &str, settings: &Settings) -> Result<Client, MilterError> {
        let stream = tokio::time::timeout(settings.milter_connect_timeout.0, open(endpoint))
            .await
            .map_err(|_| MilterError::Timeout)?
            .map_err(MilterError::Connect)?;
        let mut client = Client {
            name: endpoint.to_string(),
            stream,
            steps: 0,
            actions: 0,
            command_timeout: settings.milter_command_timeout.0,
            content_timeout: settings.milter_content_timeout.0,
        };
        let offer = Command::Negotiate {
            actions: action::ALL,
            steps: step::ALL,
        };
        client.send(&offer).await?;
        match client.read(client.command_timeout).await? {
            Response::Negotiated {
                version,
                actions,
                steps,
            } if (2..=proto::VERSION).contains(&version) => {
                // Flags the filter sets that we did not offer cannot be
                // honoured; keep only ours.
                client.steps = steps & step::ALL;
                client.actions = actions & action::ALL;
                Ok(client)
            }
            other => Err(MilterError::Unexpected(other)),
        }
    }

    fn wants(&self, no_flag: u32) -> bool {
        self.steps & no_flag == 0
    }

    async fn send(&mut self, command: &Command<'_>) -> Result<(), MilterError> {
        let bytes = command.encode();
        tokio::time::timeout(self.command_timeout, self.stream.write_all(&bytes))
            .await
            .map_err(|_| MilterError::Timeout)??;
        Ok(())
    }

    async fn read(&mut self, timeout: Duration) -> Result<Response, MilterError> {
        let packet = tokio::time::timeout(timeout, async {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header).await?;
            let len = proto::packet_length(header)?;
            let mut packet = vec![0u8; len];
            self.stream.read_exact(&mut packet).await?;
            Ok::<_, MilterError>(packet)
        })
        .await
        .map_err(|_| MilterError::Timeout)??;
        Ok(proto::parse(&packet)?)
    }

    /// Sends `macros` and one event; reads the verdict unless the filter
    /// said it sends none (`no_reply`) or skips the event (`no_event`).
    async fn event(
        &mut self,
        code: u8,
        macros: &[(String, String)],
        command: Command<'_>,
        no_event: u32,
        no_reply: u32,
    ) -> Result<Verdict, MilterError> {
        if !self.wants(no_event) {
            return Ok(Verdict::Continue);
        }
        if !macros.is_empty() {
            self.send(&Command::Macros {
                code,
                pairs: macros,
            })
            .await?;
        }
        self.send(&command).await?;
        if !self.wants(no_reply) {
            return Ok(Verdict::Continue);
        }
        self.verdict(self.command_timeout).await
    }

    /// The changes the filter negotiated; the others are logged and dropped.
    pub fn allowed(&self, changes: Vec<Change>) -> Vec<Change> {
        changes
            .into_iter()
            .filter(|c| {
                let needed = match c {
                    Response::AddHeader { .. } | Response::InsertHeader { .. } => {
                        action::ADD_HEADERS
                    }
                    Response::ChangeHeader { .. } => action::CHANGE_HEADERS,
                    Response::ReplaceBody(_) => action::CHANGE_BODY,
                    Response::AddRcpt(_) => action::ADD_RCPT | action::ADD_RCPT_PAR,
                    Response::DeleteRcpt(_) => action::DEL_RCPT,
                    Response::ChangeFrom(_) => action::CHANGE_FROM,
                    Response::Quarantine(_) => action::QUARANTINE,
                    _ => 0,
                };
                let ok = needed != 0 && self.actions & needed != 0;
                if !ok {
                    tracing::warn!(
                        "milter {}: ignored a change it did not negotiate: {c:?}",
                        self.name
                    );
                }
                ok
            })
            .collect()
    }

    /// Reads responses until a verdict. Progress reports restart the
    /// per-read wait, but not past four times `timeout` in all.
    async fn verdict(&mut self, timeout: Duration) -> Result<Verdict, MilterError> {
        let deadline = tokio::time::Instant::now() + timeout * 4;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(MilterError::Timeout);
            }
            return Ok(match self.read(timeout).await? {
                Response::Progress => continue,
                Response::Continue | Response::Skip => Verdict::Continue,
                Response::Accept => Verdict::Accept,
                Response::Reject => Verdict::Reject,
                Response::Tempfail => Verdict::Tempfail,
                Response::Discard => Verdict::Discard,
                Response::ReplyCode(text) => Verdict::Reply(text),
                other => return Err(MilterError::Unexpected(other)),
            });
        }
    }

    /// One SMTP stage's event.
    pub async fn stage(&mut self, event: &Event<'_>) -> Result<Verdict, MilterError> {
        match event {
            Event::Connect {
                macros,
                hostname,
                peer,
            } => self.connect_event(macros, hostname, *peer).await,
            Event::Helo(name) => self.helo(name).await,
            Event::Mail { macros, args } => self.mail(macros, args).await,
            Event::Rcpt { macros, args } => self.rcpt(macros, args).await,
            Event::Data => self.data().await,
        }
    }

    pub async fn connect_event(
        &mut self,
        macros: &[(String, String)],
        hostname: &str,
        address: std::net::SocketAddr,
    ) -> Result<Verdict, MilterError> {
        let command = Command::Connect {
            hostname,
            address: Some(address),
        };
        self.event(b'C', macros, command, step::NO_CONNECT, step::NR_CONNECT)
            .await
    }

    pub async fn helo(&mut self, name: &str) -> Result<Verdict, MilterError> {
        self.event(b'H', &[], Command::Helo(name), step::NO_HELO, step::NR_HELO)
            .await
    }

    /// MAIL FROM: `<sender>` and its ESMTP parameters.
    pub async fn mail(
        &mut self,
        macros: &[(String, String)],
        args: &[String],
    ) -> Result<Verdict, MilterError> {
        self.event(
            b'M',
            macros,
            Command::Mail(args),
            step::NO_MAIL,
            step::NR_MAIL,
        )
        .await
    }

    pub async fn rcpt(
        &mut self,
        macros: &[(String, String)],
        args: &[String],
    ) -> Result<Verdict, MilterError> {
        self.event(
            b'R',
            macros,
            Command::Rcpt(args),
            step::NO_RCPT,
            step::NR_RCPT,
        )
        .await
    }

    pub async fn data(&mut self) -> Result<Verdict, MilterError> {
        self.event(b'T', &[], Command::Data, step::NO_DATA, step::NR_DATA)
            .await
    }

    /// The message: headers, end of headers, body, end of body; the
    /// verdict and the changes asked for.
    /// `max_size` bounds what the changes may carry in all (a new body,
    /// new fields): a filter that sends more is broken.
    pub async fn message(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        max_size: usize,
    ) -> Result<(Verdict, Vec<Change>), MilterError> {
        for (name, value) in headers {
            let command = Command::Header { name, value };
            match self
                .event(b'L', &[], command, step::NO_HEADERS, step::NR_HEADER)
                .await?
            {
                Verdict::Continue => {}
                other => return Ok((other, Vec::new())),
            }
        }
        match self
            .event(b'N', &[], Command::EndOfHeaders, step::NO_EOH, step::NR_EOH)
            .await?
        {
            Verdict::Continue => {}
            other => return Ok((other, Vec::new())),
        }
        if self.wants(step::NO_BODY) {
            for chunk in body.chunks(proto::BODY_CHUNK) {
                self.send(&Command::Body(chunk)).await?;
                if !self.wants(step::NR_BODY) {
                    continue;
                }
                let deadline = tokio::time::Instant::now() + self.command_timeout * 4;
                let answer = loop {
                    match self.read(self.command_timeout).await? {
                        Response::Progress if tokio::time::Instant::now() < deadline => {}
                        Response::Progress => return Err(MilterError::Timeout),
                        other => break other,
                    }
                };
                match answer {
                    Response::Continue => {}
                    // SMFIR_SKIP: enough of the body.
                    Response::Skip => break,
                    Response::Accept => return Ok((Verdict::Accept, Vec::new())),
                    Response::Reject => return Ok((Verdict::Reject, Vec::new())),
                    Response::Tempfail => return Ok((Verdict::Tempfail, Vec::new())),
                    Response::Discard => return Ok((Verdict::Discard, Vec::new())),
                    Response::ReplyCode(t) => return Ok((Verdict::Reply(t), Vec::new())),
                    other => return Err(MilterError::Unexpected(other)),
                }
            }
        }
        self.send(&Command::EndOfBody).await?;
        let mut changes = Vec::new();
        // Room for a new body and some fields; more is not a filter's work.
        let budget = max_size.saturating_add(1 << 20);
        let mut carried = 0usize;
        let deadline = tokio::time::Instant::now() + self.content_timeout * 2;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(MilterError::Timeout);
            }
            match self.read(self.content_timeout).await? {
                Response::Progress => {}
                Response::Continue | Response::Accept | Response::Skip => {
                    return Ok((Verdict::Accept, changes));
                }
                Response::Reject => return Ok((Verdict::Reject, changes)),
                Response::Tempfail => return Ok((Verdict::Tempfail, changes)),
                Response::Discard => return Ok((Verdict::Discard, changes)),
                Response::ReplyCode(t) => return Ok((Verdict::Reply(t), changes)),
                other @ Response::Negotiated { .. } => {
                    return Err(MilterError::Unexpected(other));
                }
                change => {
                    carried = carried.saturating_add(size_of_change(&change));
                    if changes.len() >= MAX_CHANGES || carried > budget {
                        return Err(MilterError::TooManyChanges(changes.len() + 1));
                    }
                    changes.push(change);
                }
            }
        }
    }

    /// RSET, or a new MAIL: the filter forgets the message.
    pub async fn abort(&mut self) -> Result<(), MilterError> {
        self.send(&Command::Abort).await
    }

    pub async fn quit(mut self) {
        let _ = self.send(&Command::Quit).await;
        let _ = self.stream.shutdown().await;
    }
}

/// The octets a change carries.
fn size_of_change(change: &Change) -> usize {
    match change {
        Response::AddHeader { name, value }
        | Response::InsertHeader { name, value, .. }
        | Response::ChangeHeader { name, value, .. } => name.len() + value.len(),
        Response::ReplaceBody(chunk) => chunk.len(),
        Response::AddRcpt(t)
        | Response::DeleteRcpt(t)
        | Response::ChangeFrom(t)
        | Response::Quarantine(t) => t.len(),
        _ => 0,
    }
}

async fn open(endpoint: &str) -> std::io::Result<Box<dyn Io>> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{endpoint}` is not inet:host:port or unix:/path"),
        )
    };
    if let Some(path) = endpoint.strip_prefix("unix:") {
        return Ok(Box::new(tokio::net::UnixStream::connect(path).await?));
    }
    let rest = endpoint.strip_prefix("inet:").ok_or_else(bad)?;
    // Postfix writes inet:host:port; also accept inet:port@host (Sendmail).
    let target = match rest.split_once('@') {
        Some((port, host)) => format!("{host}:{port}"),
        None => rest.to_string(),
    };
    let stream = tokio::net::TcpStream::connect(target).await?;
    // Small packets, one answer each: Nagle would cost 40 ms a step.
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

/// Checks an endpoint's spelling (check-config).
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let ok = match endpoint.split_once(':') {
        Some(("unix", path)) => path.starts_with('/'),
        Some(("inet", rest)) => rest.contains(':') || rest.contains('@'),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{endpoint}` is not inet:host:port or unix:/path"))
    }
}
