//! Sans-IO SMTP server protocol layer: bytes in, values out, no sockets and
//! no async, so every piece can be tested by feeding it byte strings.
//!
//! * [`line`]: bounded command-line reader (RFC 5321 §2.3.8, §4.5.3.1.4);
//! * [`command`]: command and ESMTP parameter parser (RFC 5321 §4.1,
//!   RFC 1870, 3030, 3461, 4954, 6152, 6531);
//! * [`data`]: DATA and BDAT content decoders with SMTP smuggling defences
//!   (RFC 5321 §4.1.1.4, §4.5.2; RFC 3030);
//! * [`reply`]: reply builder with enhanced status codes (RFC 5321 §4.2,
//!   RFC 2034, RFC 3463).
//!
//! The session (`smtp::server`) owns the state machine and the socket; it
//! pushes what it reads into a [`LineReader`], parses lines with
//! [`parse_command`], hands the buffered bytes to a [`DataDecoder`] or
//! [`BdatDecoder`] after DATA/BDAT, and writes [`Reply::to_bytes`].

pub mod command;
pub mod data;
pub mod line;
pub mod reply;

pub use command::{Body, Command, CommandError, MailFrom, Notify, RcptTo, Ret, parse_command};
pub use data::{BareLf, BdatDecoder, DataDecoder, DataError, DataProgress};
pub use line::{Line, LineError, LineReader};
pub use reply::Reply;
