//! SMTP DATA content decoder (`merpati::smtp::proto::DataDecoder`): end of
//! data, dot-unstuffing, bare-LF policy, size cap, SMTP smuggling defence.
//!
//! Input: `[flags] [read size] content...`.
//!
//! Checked against a plain reference model written from the module's doc
//! comment: the data ends exactly at the first `<CR><LF>.<CR><LF>` (or a
//! leading `.<CR><LF>`), nothing else; the decoded message, its size and
//! the error are those of the model; and none of it depends on how the
//! content is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::smtp::proto::{BareLf, DataDecoder, DataError};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    consumed: usize,
    done: bool,
    size: u64,
    result: Result<Vec<u8>, DataError>,
}

fn decode(input: &[u8], read: usize, max: u64, policy: BareLf) -> Outcome {
    let mut dec = DataDecoder::new(max, policy);
    let mut consumed = 0;
    for piece in input.chunks(read.max(1)) {
        let progress = dec.feed(piece);
        assert!(progress.consumed <= piece.len());
        assert_eq!(progress.done, dec.is_done());
        consumed += progress.consumed;
        if progress.done {
            // Bytes after the end belong to the next command.
            assert_eq!(dec.feed(b".\r\n").consumed, 0);
            break;
        }
        assert_eq!(
            progress.consumed,
            piece.len(),
            "stopped early without the end"
        );
    }
    Outcome {
        consumed,
        done: dec.is_done(),
        size: dec.size(),
        result: dec.finish(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the message ends (index after the end marker), if it does.
fn model_end(input: &[u8]) -> Option<(usize, usize)> {
    if input.starts_with(b".\r\n") {
        return Some((0, 3));
    }
    // Content keeps the CRLF before the dot.
    find(input, b"\r\n.\r\n").map(|at| (at + 2, at + 5))
}

/// Lines end at LF; a leading dot is removed; CRLF stays, a bare LF
/// becomes CRLF; a bare CR is content. Returns (message, saw bare LF).
fn model_decode(content: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut bare = false;
    for line in content.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_prefix(b".").unwrap_or(line);
        match line.strip_suffix(b"\n") {
            Some(body) => {
                let body = body.strip_suffix(b"\r").unwrap_or_else(|| {
                    bare = true;
                    body
                });
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(line),
        }
    }
    (out, bare)
}

fuzz_target!(|data: &[u8]| {
    let [flags, read, input @ ..] = data else {
        return;
    };
    let policy = if flags & 1 == 0 {
        BareLf::Normalize
    } else {
        BareLf::Reject
    };
    let max = match (flags >> 1) & 3 {
        0 => u64::MAX,
        1 => 0,
        2 => u64::from(flags >> 3), // 0..=31: the cap in the middle of a line
        _ => 1000,
    };
    let read = usize::from(*read) + 1;

    let whole = decode(input, input.len(), max, policy);
    let split = decode(input, read, max, policy);
    assert_eq!(whole, split, "outcome depends on read size {read}");

    match model_end(input) {
        None => {
            assert!(!whole.done, "ended without <CR><LF>.<CR><LF>");
            assert_eq!(whole.consumed, input.len());
            assert_eq!(whole.result, Err(DataError::Incomplete));
        }
        Some((content_len, end)) => {
            assert!(whole.done, "missed the end marker");
            assert_eq!(whole.consumed, end, "ended at the wrong place");
            let (message, bare) = model_decode(&input[..content_len]);
            let expected = if bare && policy == BareLf::Reject {
                Err(DataError::BareLf)
            } else if message.len() as u64 > max {
                Err(DataError::TooBig)
            } else {
                Ok(message.clone())
            };
            assert_eq!(whole.result, expected);
            if policy == BareLf::Normalize {
                assert_eq!(whole.size, message.len() as u64);
            }
            if let Ok(out) = &whole.result {
                // CRLF-normalised: no LF without its CR can go downstream.
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\n' {
                        assert!(i > 0 && out[i - 1] == b'\r');
                    }
                }
                assert!(out.is_empty() || out.ends_with(b"\r\n"));
            }
        }
    }
});
