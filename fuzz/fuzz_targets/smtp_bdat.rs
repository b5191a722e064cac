//! SMTP BDAT chunk decoder (`merpati::smtp::proto::BdatDecoder`, RFC 3030):
//! exact chunk sizes, CRLF pairs across chunk boundaries, bare-LF policy,
//! BINARYMIME pass-through, the size cap.
//!
//! Input: `[flags] [read size]` then chunks, each `[n] n octets`, where
//! `n == 255` is instead followed by an 8-byte little-endian size (huge
//! sizes included); the last chunk may be short (connection dropped).
//!
//! Checked against a reference model: the message is the concatenated
//! chunk octets, CRLF-normalised in text mode (no dot-unstuffing, no end
//! marker), untouched in binary mode; consumption and results do not
//! depend on how a chunk arrives in reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::smtp::proto::{BareLf, BdatDecoder, DataError};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text(BareLf),
    Binary,
}

/// (chunk size as announced, octets available after the BDAT line)
fn chunks(mut input: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = input.split_first() {
        let (size, rest) = if n == 255 {
            let mut le = [0u8; 8];
            let take = rest.len().min(8);
            le[..take].copy_from_slice(&rest[..take]);
            (u64::from_le_bytes(le), &rest[take..])
        } else {
            (u64::from(n), rest)
        };
        let have = usize::try_from(size).unwrap_or(usize::MAX).min(rest.len());
        out.push((size, rest));
        input = &rest[have..];
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    consumed: Vec<usize>,
    size: u64,
    result: Result<Vec<u8>, DataError>,
}

fn decode(chunks: &[(u64, &[u8])], mode: Mode, max: u64, read: usize) -> Outcome {
    let mut dec = match mode {
        Mode::Text(policy) => BdatDecoder::new(max, policy),
        Mode::Binary => BdatDecoder::binary(max),
    };
    let mut consumed = Vec::new();
    for &(size, stream) in chunks {
        dec.begin_chunk(size);
        assert_eq!(dec.remaining(), size);
        let mut took = 0;
        let mut done = size == 0;
        for piece in stream.chunks(read.max(1)) {
            if done {
                break;
            }
            let before = dec.remaining();
            let progress = dec.feed(piece);
            assert!(progress.consumed <= piece.len());
            assert_eq!(before - dec.remaining(), progress.consumed as u64);
            assert_eq!(progress.done, dec.remaining() == 0);
            took += progress.consumed;
            done = progress.done;
        }
        if size == 0 {
            // A zero-size chunk is complete at once.
            assert!(dec.feed(b"next").done);
            assert_eq!(dec.feed(b"next").consumed, 0);
        }
        consumed.push(took);
        if !done {
            break; // connection ended inside the chunk
        }
    }
    Outcome {
        consumed,
        size: dec.size(),
        result: dec.finish(),
    }
}

/// CRLF stays, bare LF -> CRLF (or reject), bare CR stays.
fn model_text(content: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(content.len());
    let mut bare = false;
    for (i, &b) in content.iter().enumerate() {
        if b == b'\n' && (i == 0 || content[i - 1] != b'\r') {
            bare = true;
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b);
        }
    }
    (out, bare)
}

fuzz_target!(|data: &[u8]| {
    let [flags, read, input @ ..] = data else {
        return;
    };
    let mode = match flags % 3 {
        0 => Mode::Text(BareLf::Normalize),
        1 => Mode::Text(BareLf::Reject),
        _ => Mode::Binary,
    };
    let max = match (flags / 3) % 4 {
        0 => u64::MAX,
        1 => 0,
        2 => u64::from(flags / 12), // 0..=21
        _ => 1000,
    };
    let read = usize::from(*read) + 1;
    let chunks = chunks(input);

    let whole = decode(&chunks, mode, max, usize::MAX);
    let split = decode(&chunks, mode, max, read);
    assert_eq!(whole, split, "outcome depends on read size {read}");

    // The model: every chunk's octets, exactly.
    let mut content = Vec::new();
    let mut complete = true;
    for (i, &(size, stream)) in chunks.iter().enumerate() {
        let have = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .min(stream.len());
        assert_eq!(whole.consumed.get(i), Some(&have));
        content.extend_from_slice(&stream[..have]);
        if (have as u64) < size {
            complete = false;
            break;
        }
    }
    if !complete {
        assert_eq!(whole.result, Err(DataError::Incomplete));
        return;
    }
    let (message, bare) = match mode {
        Mode::Text(_) => model_text(&content),
        Mode::Binary => (content, false),
    };
    let expected = if bare && mode == Mode::Text(BareLf::Reject) {
        Err(DataError::BareLf)
    } else if message.len() as u64 > max {
        Err(DataError::TooBig)
    } else {
        Ok(message.clone())
    };
    assert_eq!(whole.result, expected);
    if mode == Mode::Binary {
        assert_eq!(whole.size, message.len() as u64);
    } else if mode == Mode::Text(BareLf::Normalize) {
        // A trailing CR waits for a possible LF in the next chunk and is
        // only counted by `finish`.
        let pending = u64::from(message.ends_with(b"\r"));
        assert_eq!(whole.size + pending, message.len() as u64);
    }
});
