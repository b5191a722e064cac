//! SMTP command phase: the bounded line reader and the command/ESMTP
//! parameter parser (`merpati::smtp::proto::{line, command}`).
//!
//! Input: `[max_line selector] [chunk size] stream...`. The whole input is
//! also parsed as one command line (what the session hands the parser).
//!
//! Checked: no panic; every error reply is well-formed CRLF lines (no
//! client byte can forge a reply line); the lines the reader yields do not
//! depend on how the stream is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::smtp::proto::{Command, CommandError, LineReader, parse_command};

/// A rendered SMTP reply: one or more lines, each ending in CRLF, with no
/// CR or LF anywhere else.
fn assert_reply_lines(bytes: &[u8]) {
    assert!(
        bytes.ends_with(b"\r\n"),
        "reply not CRLF-terminated: {bytes:?}"
    );
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR in reply {bytes:?}"),
            b'\n' => assert_eq!(
                bytes.get(i.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF in reply {bytes:?}"
            ),
            _ => {}
        }
    }
}

fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let result = parse_command(line);
    match &result {
        Ok(cmd) => {
            assert!(!cmd.verb().is_empty());
            let _ = format!("{cmd:?}");
        }
        Err(e) => {
            let _ = e.to_string();
            assert_reply_lines(&e.reply().to_bytes());
        }
    }
    result
}

type Lines = Vec<Result<(Vec<u8>, bool), ()>>;

/// Feeds `stream` to a fresh reader in `chunk`-byte reads, draining it
/// after each read as the session does.
fn read_lines(stream: &[u8], max_line: usize, chunk: usize) -> (Lines, Vec<u8>) {
    let mut reader = LineReader::new(max_line);
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        reader.push(piece);
        while let Some(line) = reader.next_line() {
            out.push(line.map(|l| (l.bytes, l.bare_lf)).map_err(|_| ()));
        }
        // Drained: only a partial line that may still fit (plus its CR).
        assert!(reader.buffered().len() <= max_line + 1);
    }
    (out, reader.buffered().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);

    let [sel, chunk, stream @ ..] = data else {
        return;
    };
    let max_line = match sel % 4 {
        0 => 510,                   // RFC 5321 strict (512 with CRLF)
        1 => 2046,                  // Postfix default
        _ => usize::from(*sel / 4), // 0..=63: exercise the edges
    };
    let chunk = usize::from(*chunk) + 1;
    let (whole, whole_rest) = read_lines(stream, max_line, stream.len());
    let (split, split_rest) = read_lines(stream, max_line, chunk);
    assert_eq!(whole, split, "lines depend on read size {chunk}");
    // What is left over may differ only in an over-long line's dropped part.
    if whole_rest.len() <= max_line {
        assert_eq!(
            whole_rest, split_rest,
            "buffered tail depends on read size {chunk}"
        );
    }
    for line in whole.iter().flatten() {
        assert!(line.0.len() <= max_line);
        assert!(!line.0.contains(&b'\n'));
        let _ = parse(&line.0);
    }
});
