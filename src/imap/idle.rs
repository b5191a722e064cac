//! IDLE (RFC 2177): the client waits, we push EXISTS/EXPUNGE/FETCH as
//! changes reach the selected mailbox (store events arrive within
//! milliseconds of the change), until DONE. The session's idle timeout
//! and shutdown still apply.

use super::session::{CmdError, CmdResult, Done, End, Session};
use tokio::io::AsyncReadExt;

impl Session {
    pub(super) async fn idle(&mut self, _tag: &str) -> CmdResult {
        self.sync(true).await?;
        self.line("+ idling");
        let timeout = self.config.imap.idle_timeout.0;
        let shutdown = self.svc.shutdown.clone();
        // The timer and the shutdown wait are set up once for the whole
        // IDLE, not per wake-up: with 10,000 idlers each new message would
        // otherwise re-register 20,000 timer and waiter entries under
        // shared locks, and the fan-out would queue on them.
        let idle_deadline = tokio::time::sleep(timeout);
        tokio::pin!(idle_deadline);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // Only DONE is expected here; a small buffer keeps thousands of
        // idling sessions cheap (more input is read on the next turn).
        let mut buf = [0u8; 512];
        loop {
            // A DONE may already be buffered (pipelined by the client).
            if let Some(line) = self.reader.take_line() {
                return match line {
                    Ok(line) if line.eq_ignore_ascii_case(b"DONE") => {
                        self.sync(true).await?;
                        Ok(Done::ok("IDLE terminated"))
                    }
                    Ok(_) => Err(CmdError::bad("Expected DONE")),
                    Err(_) => Err(CmdError::bad("Line too long")),
                };
            }
            if self.inflate_pending().map_err(CmdError::End)? {
                continue;
            }
            self.flush().await.map_err(CmdError::End)?;
            let stream = &mut self.stream;
            let selected = &mut self.selected;
            let event = async {
                match selected.as_mut() {
                    Some(sel) => sel.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) => return Err(CmdError::End(End::ClientClosed)),
                    Ok(n) => {
                        self.received(buf.get(..n).unwrap_or_default())
                            .map_err(CmdError::End)?;
                        // The idle timeout counts from the client's last word.
                        idle_deadline
                            .as_mut()
                            .reset(tokio::time::Instant::now() + timeout);
                    }
                    Err(e) => return Err(CmdError::End(End::Io(e))),
                },
                () = event => {
                    self.sync(true).await?;
                }
                () = &mut idle_deadline => {
                    self.untagged("BYE Autologout; idle for too long");
                    return Err(CmdError::End(End::Timeout));
                }
                () = &mut cancelled => {
                    self.untagged("BYE Server shutting down");
                    return Err(CmdError::End(End::Shutdown));
                }
            }
        }
    }
}
