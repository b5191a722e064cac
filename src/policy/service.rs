//! The client side of Postfix's policy delegation protocol
//! (SMTPD_POLICY_README): `name=value` lines and an empty line to the
//! server, `action=...` and an empty line back. What postgrey and other
//! policy daemons speak, over TCP or a unix socket.

use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Bound on the server's answer.
const MAX_RESPONSE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Inet(String),
    Unix(PathBuf),
}

impl Endpoint {
    /// `inet:host:port`, `host:port`, or `unix:/path`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{text}`: the unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let addr = text.strip_prefix("inet:").unwrap_or(text);
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint::Inet(addr.to_string()))
            }
            _ => Err(format!("`{text}` is not inet:host:port or unix:/path")),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Inet(a) => write!(f, "inet:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Asks the server once; the text after `action=`.
pub async fn ask(
    endpoint: &Endpoint,
    attributes: &[(&str, String)],
    timeout: Duration,
) -> Result<String, String> {
    let request = encode(attributes);
    let work = async {
        match endpoint {
            Endpoint::Inet(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| format!("connect to {endpoint}: {e}"))?;
                exchange(stream, &request).await
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("connect to {endpoint}: {e}"))?;
                exchange(stream, &request).await
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(|e| format!("{endpoint}: {e}")),
        Err(_) => Err(format!(
            "{endpoint}: no answer within {}s",
            timeout.as_secs()
        )),
    }
}

/// Attribute values cannot contain a newline; anything else passes.
fn encode(attributes: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in attributes {
        let value: String = value.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        out.extend_from_slice(format!("{name}={value}\n").as_bytes());
    }
    out.push(b'\n');
    out
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &[u8],
) -> Result<String, String> {
    let mut stream = stream;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    // One byte past the bound, so an over-long answer is told from one
    // that ends exactly there; read_line cannot grow past it.
    let mut stream = BufReader::new(stream.take(MAX_RESPONSE as u64 + 1));
    let mut action = None;
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        total += n;
        if total > MAX_RESPONSE {
            return Err(format!("answer longer than {MAX_RESPONSE} bytes"));
        }
        if n == 0 {
            return Err("connection closed before the end of the answer".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("action=") {
            action = Some(value.to_string());
        }
    }
    action.ok_or_else(|| "answer without action=".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("inet:127.0.0.1:10023"),
            Ok(Endpoint::Inet("127.0.0.1:10023".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:/run/postgrey.sock"),
            Ok(Endpoint::Unix("/run/postgrey.sock".into()))
        );
        assert!(Endpoint::parse("unix:private/policy").is_err());
        assert!(Endpoint::parse("inet:nohost").is_err());
    }

    #[tokio::test]
    async fn a_request_gets_the_action_and_bad_servers_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in [
                &b"action=DEFER_IF_PERMIT Greylisted\n\n"[..],
                b"garbage\n\n",
                b"action=OK",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.ends_with(b"\n\n") {
                    let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
                        .await
                        .unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                // A newline in a value cannot inject an attribute.
                assert_eq!(got, b"request=smtpd_access_policy\nsender=a@bx=y\n\n");
                s.write_all(answer).await.unwrap();
            }
        });
        let endpoint = Endpoint::Inet(addr.to_string());
        let attrs = [
            ("request", "smtpd_access_policy".to_string()),
            ("sender", "a@b\nx=y".to_string()),
        ];
        let t = Duration::from_secs(5);
        assert_eq!(
            ask(&endpoint, &attrs, t).await.unwrap(),
            "DEFER_IF_PERMIT Greylisted"
        );
        assert!(
            ask(&endpoint, &attrs, t)
                .await
                .unwrap_err()
                .contains("without action")
        );
        assert!(
            ask(&endpoint, &attrs, t)
                .await
                .unwrap_err()
                .contains("closed")
        );
        server.await.unwrap();
    }
}
