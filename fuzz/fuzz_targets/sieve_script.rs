//! The Sieve compiler and interpreter (`merpati::sieve`): any bytes as a
//! script.
//!
//! Checked: no panic in lexing, parsing or compiling; a compiled program
//! survives its stored form unchanged (`codec` round trip); running it
//! against a small message ends (an error is fine) within the default
//! limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::sieve::eval::{self, Fields, Input, Limits};

const MESSAGE: &[u8] = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hi\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\nbody text\r\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(program) = merpati::sieve::compile(text) else {
        return;
    };
    let stored = merpati::sieve::codec::encode(&program);
    assert_eq!(merpati::sieve::codec::decode(&stored).as_ref(), Some(&program));
    let fields = Fields::of(MESSAGE);
    let input = Input {
        headers: &fields.headers,
        starts: &fields.starts,
        envelope_from: "a@b.example",
        envelope_to: "c+x@d.example",
        delimiter: "+",
        message: MESSAGE,
    };
    let _ = eval::run(&program, &input, Limits::default());
});
