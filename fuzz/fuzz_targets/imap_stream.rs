//! IMAP framing (`merpati::imap::proto::CommandReader`) feeding the parser,
//! as the session does: lines, `{n}` / `{n+}` literals, continuation
//! requests, line and literal limits.
//!
//! Input: `[line limit] [literal limit] [read size] stream...`.
//!
//! Checked: no panic; frames (commands, continuations, errors with their
//! tags) do not depend on how the stream is split into reads; every
//! command respects the limits; parsing each command does not panic.
//!
//! The two reader bugs this target found (see `fuzz/README.md`) are fixed
//! and checked like everything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::imap::proto::{CommandReader, Frame, parse_command};

/// Splits `stream` into reads of `read` bytes.
fn reads(stream: &[u8], read: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = read.max(1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
    }
    out
}

fn frames(stream: &[u8], line_limit: usize, literal_limit: usize, read: usize) -> Vec<Frame> {
    let mut reader = CommandReader::new(line_limit, literal_limit);
    let mut out = Vec::new();
    for piece in reads(stream, read) {
        reader.push(piece);
        while let Some(frame) = reader.next_frame() {
            out.push(frame);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [line, literal, read, stream @ ..] = data else {
        return;
    };
    let line_limit = match line % 4 {
        0 => 8192,
        _ => usize::from(*line / 4), // 0..=63
    };
    let literal_limit = match literal % 4 {
        0 => 65536,
        1 => line_limit, // before login
        _ => usize::from(*literal / 4),
    };
    let read = usize::from(*read) + 1;

    let whole = frames(stream, line_limit, literal_limit, stream.len());
    let split = frames(stream, line_limit, literal_limit, read);
    assert_eq!(whole, split, "frames depend on read size {read}");

    let budget = literal_limit
        .saturating_add(line_limit.saturating_mul(9))
        .saturating_add(2 * 9);
    for frame in &whole {
        if let Frame::Command(bytes) = frame {
            assert!(bytes.len() <= budget, "command of {} bytes", bytes.len());
            let _ = parse_command(bytes);
        }
    }
});
