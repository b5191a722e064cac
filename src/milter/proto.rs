//! The Sendmail milter protocol, version 6, sans-IO: the MTA's packets as
//! bytes, and the filter's packets parsed from bytes. A packet is a 32-bit
//! big-endian length (command byte included), the command byte, then the
//! data; strings are NUL-terminated.

/// Largest packet accepted from a filter (libmilter's own limit is 64 KiB
/// for body chunks; a replaced body arrives in such chunks too).
pub const MAX_PACKET: usize = 1 << 20;
/// Body chunks sent to a filter, at most (libmilter's MILTER_CHUNK_SIZE).
pub const BODY_CHUNK: usize = 65_535;

pub const VERSION: u32 = 6;

/// SMFIF_*: what a filter may do to the message.
pub mod action {
    pub const ADD_HEADERS: u32 = 0x01;
    pub const CHANGE_BODY: u32 = 0x02;
    pub const ADD_RCPT: u32 = 0x04;
    pub const DEL_RCPT: u32 = 0x08;
    pub const CHANGE_HEADERS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHANGE_FROM: u32 = 0x40;
    pub const ADD_RCPT_PAR: u32 = 0x80;
    pub const SET_SYMLIST: u32 = 0x100;
    /// Everything this MTA carries out.
    pub const ALL: u32 = ADD_HEADERS
        | CHANGE_BODY
        | ADD_RCPT
        | DEL_RCPT
        | CHANGE_HEADERS
        | QUARANTINE
        | CHANGE_FROM
        | ADD_RCPT_PAR
        | SET_SYMLIST;
}

/// SMFIP_*: steps a filter does not want (NO*) or answers no reply to (NR_*).
pub mod step {
    pub const NO_CONNECT: u32 = 0x01;
    pub const NO_HELO: u32 = 0x02;
    pub const NO_MAIL: u32 = 0x04;
    pub const NO_RCPT: u32 = 0x08;
    pub const NO_BODY: u32 = 0x10;
    pub const NO_HEADERS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HEADER: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONNECT: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKNOWN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HEADER_LEADING_SPACE: u32 = 0x100000;
    /// Every flag this MTA honours: all but HEADER_LEADING_SPACE (header
    /// values go without their leading space) and RCPT_REJ (refused
    /// recipients are not shown to filters).
    pub const ALL: u32 = 0x1F_FFFF & !HEADER_LEADING_SPACE & !RCPT_REJ;
}

/// The MTA's side of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Negotiate {
        actions: u32,
        steps: u32,
    },
    /// Macros for the command that follows (`code` is its byte).
    Macros {
        code: u8,
        pairs: &'a [(String, String)],
    },
    Connect {
        hostname: &'a str,
        address: Option<std::net::SocketAddr>,
    },
    Helo(&'a str),
    Mail(&'a [String]),
    Rcpt(&'a [String]),
    Data,
    Header {
        name: &'a str,
        value: &'a str,
    },
    EndOfHeaders,
    Body(&'a [u8]),
    EndOfBody,
    Abort,
    Quit,
}

impl Command<'_> {
    /// The packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let code = match self {
            Command::Negotiate { actions, steps } => {
                for n in [VERSION, *actions, *steps] {
                    data.extend_from_slice(&n.to_be_bytes());
                }
                b'O'
            }
            Command::Macros { code, pairs } => {
                data.push(*code);
                for (name, value) in pairs.iter() {
                    cstr(&mut data, name);
                    cstr(&mut data, value);
                }
                b'D'
            }
            Command::Connect { hostname, address } => {
                cstr(&mut data, hostname);
                match address {
                    Some(a) => {
                        let v4 = a.ip().to_canonical().is_ipv4();
                        data.push(if v4 { b'4' } else { b'6' });
                        data.extend_from_slice(&a.port().to_be_bytes());
                        cstr(&mut data, &a.ip().to_canonical().to_string());
                    }
                    None => data.push(b'U'),
                }
                b'C'
            }
            Command::Helo(name) => {
                cstr(&mut data, name);
                b'H'
            }
            Command::Mail(args) => {
                args.iter().for_each(|a| cstr(&mut data, a));
                b'M'
            }
            Command::Rcpt(args) => {
                args.iter().for_each(|a| cstr(&mut data, a));
                b'R'
            }
            Command::Data => b'T',
            Command::Header { name, value } => {
                cstr(&mut data, name);
                cstr(&mut data, value);
                b'L'
            }
            Command::EndOfHeaders => b'N',
            Command::Body(chunk) => {
                data.extend_from_slice(chunk);
                b'B'
            }
            Command::EndOfBody => b'E',
            Command::Abort => b'A',
            Command::Quit => b'Q',
        };
        let mut out = Vec::with_capacity(5 + data.len());
        let len = u32::try_from(data.len() + 1).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(code);
        out.extend_from_slice(&data);
        out
    }
}

fn cstr(out: &mut Vec<u8>, text: &str) {
    // A NUL inside would end the string early at the filter.
    out.extend(text.bytes().filter(|b| *b != 0));
    out.push(0);
}

/// The filter's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Negotiated {
        version: u32,
        actions: u32,
        steps: u32,
    },
    Accept,
    Continue,
    Discard,
    Reject,
    Tempfail,
    /// `550 5.7.1 text` (SMFIR_REPLYCODE).
    ReplyCode(String),
    Progress,
    Skip,
    AddHeader {
        name: String,
        value: String,
    },
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    ReplaceBody(Vec<u8>),
    AddRcpt(String),
    DeleteRcpt(String),
    ChangeFrom(String),
    Quarantine(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("packet of {0} octets is over the limit")]
    TooLong(usize),
    #[error("empty packet")]
    Empty,
    #[error("unknown response '{0}'")]
    Unknown(char),
    #[error("malformed '{0}' response")]
    Malformed(char),
}

/// The length of the packet a 4-octet header announces (command included).
pub fn packet_length(header: [u8; 4]) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(ProtoError::Empty);
    }
    if len > MAX_PACKET {
        return Err(ProtoError::TooLong(len));
    }
    Ok(len)
}

/// Parses one packet's command byte and data.
pub fn parse(packet: &[u8]) -> Result<Response, ProtoError> {
    let (&code, data) = packet.split_first().ok_or(ProtoError::Empty)?;
    let c = char::from(code);
    let bad = || ProtoError::Malformed(c);
    let mut r = Fields(data);
    Ok(match code {
        b'O' => Response::Negotiated {
            version: r.u32().ok_or_else(bad)?,
            actions: r.u32().ok_or_else(bad)?,
            steps: r.u32().ok_or_else(bad)?,
        },
        b'a' => Response::Accept,
        b'c' => Response::Continue,
        b'd' => Response::Discard,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'y' => Response::ReplyCode(r.string().ok_or_else(bad)?),
        b'p' => Response::Progress,
        b's' => Response::Skip,
        b'h' => Response::AddHeader {
            name: r.string().ok_or_else(bad)?,
            value: r.string().ok_or_else(bad)?,
        },
        b'i' => Response::InsertHeader {
            index: r.u32().ok_or_else(bad)?,
            name: r.string().ok_or_else(bad)?,
            value: r.string().ok_or_else(bad)?,
        },
        b'm' => Response::ChangeHeader {
            index: r.u32().ok_or_else(bad)?,
            name: r.string().ok_or_else(bad)?,
            value: r.string().unwrap_or_default(),
        },
        b'b' => Response::ReplaceBody(data.to_vec()),
        b'+' | b'2' => Response::AddRcpt(r.string().ok_or_else(bad)?),
        b'-' => Response::DeleteRcpt(r.string().ok_or_else(bad)?),
        b'e' => Response::ChangeFrom(r.string().ok_or_else(bad)?),
        b'q' => Response::Quarantine(r.string().unwrap_or_default()),
        _ => return Err(ProtoError::Unknown(c)),
    })
}

struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }

    /// A NUL-terminated string (the last one may lack its NUL).
    fn string(&mut self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let end = memchr::memchr(0, self.0).unwrap_or(self.0.len());
        let text = String::from_utf8_lossy(self.0.get(..end)?).into_owned();
        self.0 = self.0.get(end + 1..).unwrap_or_default();
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_libmilter_expects() {
        let neg = Command::Negotiate {
            actions: action::ALL,
            steps: step::ALL,
        }
        .encode();
        assert_eq!(&neg[..5], &[0, 0, 0, 13, b'O']);
        assert_eq!(&neg[5..9], &6u32.to_be_bytes());
        let addr: std::net::SocketAddr = "192.0.2.1:2525".parse().unwrap();
        let c = Command::Connect {
            hostname: "mx.test",
            address: Some(addr),
        }
        .encode();
        assert_eq!(&c[4..], b"Cmx.test\x004\x09\xdd192.0.2.1\x00");
        let h = Command::Header {
            name: "Subject",
            value: "hi",
        }
        .encode();
        assert_eq!(h, b"\x00\x00\x00\x0cLSubject\x00hi\x00");
    }

    #[test]
    fn responses_parse_and_garbage_is_an_error() {
        assert_eq!(parse(b"c"), Ok(Response::Continue));
        assert_eq!(
            parse(b"y550 5.7.1 go away\0"),
            Ok(Response::ReplyCode("550 5.7.1 go away".into()))
        );
        assert_eq!(
            parse(b"m\0\0\0\x01Subject\0"),
            Ok(Response::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new()
            })
        );
        assert_eq!(parse(b"i\0\0"), Err(ProtoError::Malformed('i')));
        assert_eq!(parse(b"Z"), Err(ProtoError::Unknown('Z')));
        assert_eq!(parse(b""), Err(ProtoError::Empty));
        assert_eq!(
            packet_length([0, 0x20, 0, 0]),
            Err(ProtoError::TooLong(0x20_0000))
        );
    }
}
