//! Sans-IO IMAP protocol layer: bytes in, values out, no sockets.
//!
//! * [`reader`]: command framing with literals and LITERAL+ (RFC 3501
//!   §4.3, RFC 7888), bounded;
//! * [`command`]: the command parser (RFC 3501 §6, §9 and extensions);
//! * [`sequence`]: sequence sets;
//! * [`date`]: IMAP dates;
//! * [`response`]: string/literal encoding for responses.
//!
//! Written here rather than taken from imap-codec: the extensions on the
//! roadmap (CONDSTORE/QRESYNC, ESEARCH, LIST-STATUS, IMAP4rev2) are missing
//! or unfinished there, and the parser is small.

pub mod command;
pub mod date;
pub mod reader;
pub mod response;
pub mod sequence;

pub use command::{
    AppendMessage, Command, CommandKind, FetchAtt, ListOptions, ParseError, Qresync, SearchKey,
    SearchReturn, Section, SectionText, SortCriterion, SortKey, StatusItem, ThreadAlgorithm,
    email_object_id, mailbox_object_id, parse_command,
};
pub use reader::{CommandReader, Frame, FrameError};
pub use sequence::SeqSet;

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a whole client script through reader and parser in every
    /// chunk size from 1 to 512 bytes: framing must not depend on how TCP
    /// splits the stream.
    #[test]
    fn script_in_every_chunk_size() {
        let script: &[u8] = b"1 CAPABILITY\r\n\
2 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n\
3 LOGIN {4}\r\nuser {8+}\r\np@ss w0r\r\n\
4 NAMESPACE\r\n\
5 LIST (SUBSCRIBED) \"\" \"*\"\r\n\
6 SELECT INBOX (CONDSTORE)\r\n\
7 UID FETCH 1:* (FLAGS)\r\n\
8 UID FETCH 4 (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID)])\r\n\
9 APPEND Sent (\\Seen) {25}\r\nSubject: x\r\n\r\nbody here\r\n\r\n\
10 UID SEARCH CHARSET UTF-8 TEXT {5+}\r\nhello\r\n\
11 IDLE\r\n";
        let reference = run(script, script.len());
        assert_eq!(reference.len(), 11);
        for size in 1..=512 {
            assert_eq!(run(script, size), reference, "chunk size {size}");
        }
        assert!(reference.iter().all(|r| r.is_ok()), "{reference:?}");
    }

    fn run(script: &[u8], size: usize) -> Vec<Result<Command, ParseError>> {
        let mut reader = CommandReader::new(1000, 1000);
        let mut out = Vec::new();
        for chunk in script.chunks(size) {
            reader.push(chunk);
            while let Some(frame) = reader.next_frame() {
                match frame {
                    Frame::Command(bytes) => out.push(parse_command(&bytes)),
                    Frame::Continue => {}
                    Frame::Error(e) => panic!("{e}"),
                }
            }
        }
        out
    }
}
