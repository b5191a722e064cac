//! POP3 wire format (`merpati::pop3::proto`): the command parser, SASL
//! responses, and the multi-line response builders (TOP cut, byte-stuffing).
//!
//! Input: `[lines for TOP, 4 bytes LE] [max_line] [read size] stream...`;
//! the whole input is also one command line, one SASL response and one
//! message.
//!
//! Checked: no panic; replies are one CRLF line; the command parser gives
//! the same answers whether lines come whole or through the shared
//! `LineReader` in any read size; TOP is a prefix of the message; a
//! byte-stuffed message (CRLF lines, as stored) is terminated by its final
//! `.CRLF` and nothing earlier, and unstuffs back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::pop3::proto::{
    Command, ParseError, parse_command, parse_sasl_response, top, write_stuffed,
};
use merpati::smtp::proto::LineReader;

fn assert_one_line(reply: &[u8]) {
    assert!(reply.ends_with(b"\r\n"));
    let body = &reply[..reply.len() - 2];
    assert!(
        !body.contains(&b'\r') && !body.contains(&b'\n'),
        "{reply:?}"
    );
    assert!(body.starts_with(b"+OK") || body.starts_with(b"-ERR"));
}

fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let result = parse_command(line);
    match &result {
        Ok(cmd) => {
            let _ = cmd.verb();
            let _ = format!("{cmd:?}");
            // Arguments come from a line: no terminator can survive in them.
            let args: Vec<&String> = match cmd {
                Command::User(s) | Command::Pass(s) => vec![s],
                Command::Auth { mechanism, initial } => {
                    mechanism.iter().chain(initial.iter()).collect()
                }
                _ => Vec::new(),
            };
            for arg in args {
                assert!(!arg.contains(['\r', '\n', '\0']), "{cmd:?}");
            }
        }
        Err(e) => assert_one_line(&e.reply().to_bytes()),
    }
    result
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn check_stuffed(message: &[u8]) {
    let mut out = Vec::new();
    write_stuffed(&mut out, message);
    assert!(out.ends_with(b".\r\n"));
    // A client reading CRLF lines stops at the first line that is ".".
    let mut wire = b"\r\n".to_vec();
    wire.extend_from_slice(&out);
    assert_eq!(
        find(&wire, b"\r\n.\r\n"),
        Some(wire.len() - 5),
        "early or missing terminator for {message:?}"
    );
    // Unstuffing gives the message back (plus the CRLF added to an
    // unterminated last line).
    let mut unstuffed = Vec::new();
    for line in out[..out.len() - 3].split_inclusive(|&b| b == b'\n') {
        unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    let mut expected = message.to_vec();
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(unstuffed, expected);
}

fn read_lines(
    stream: &[u8],
    max_line: usize,
    read: usize,
) -> Vec<Option<Result<Command, ParseError>>> {
    let mut reader = LineReader::new(max_line);
    let mut out = Vec::new();
    for piece in stream.chunks(read.max(1)) {
        reader.push(piece);
        while let Some(line) = reader.next_line() {
            out.push(line.ok().map(|l| parse(&l.bytes)));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let _ = parse_sasl_response(data);
    check_stuffed(data);

    let [l0, l1, l2, l3, max_line, read, stream @ ..] = data else {
        return;
    };
    let lines = u32::from_le_bytes([*l0, *l1, *l2, *l3]);
    let cut = top(stream, lines);
    assert!(stream.starts_with(cut));
    check_stuffed(cut);

    let max_line = match max_line % 2 {
        0 => 510,
        _ => usize::from(*max_line / 2), // 0..=127
    };
    let read = usize::from(*read) + 1;
    assert_eq!(
        read_lines(stream, max_line, stream.len()),
        read_lines(stream, max_line, read),
        "commands depend on read size {read}"
    );
});
