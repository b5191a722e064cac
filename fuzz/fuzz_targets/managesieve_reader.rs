//! The ManageSieve command reader (`merpati::managesieve::proto`): any
//! bytes from a client, fed in arbitrary chunks.
//!
//! Checked: no panic; every command name is upper-case letters; no
//! string argument is larger than the literal bound (quoted strings are
//! shorter still).
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::managesieve::proto::{Arg, Reader};

const MAX_LINE: usize = 256;
const MAX_LITERAL: u64 = 1024;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(MAX_LINE, MAX_LITERAL);
    let split = data.first().map_or(1, |b| usize::from(*b % 17) + 1);
    for (i, chunk) in data.chunks(split).enumerate() {
        reader.push(chunk);
        loop {
            let next = if i % 3 == 0 { reader.next_response() } else { reader.next_command() };
            let Some(got) = next else { break };
            if let Ok(command) = got {
                assert!(command.name.bytes().all(|b| b.is_ascii_uppercase()));
                for arg in &command.args {
                    if let Arg::String(s) = arg {
                        assert!(s.len() as u64 <= MAX_LITERAL.max(1024));
                    }
                }
            }
        }
    }
});
