//! The compiled form, as stored with the account, so delivery never
//! parses Sieve text: the program in postcard's compact binary encoding
//! of its serde form, behind a magic and a SHA-256 of the payload. The
//! digest makes damage (a bad disk, a hand-edited store) a refusal
//! before decoding, so the decoder only ever sees what `encode` wrote;
//! the programs `compile` makes are bounded in depth and size, so that
//! is all it has to handle.

use super::compile::Program;

/// Bumped whenever the program's shape changes: an older compiled form
/// is then refused and the script is compiled again from its text.
const MAGIC: &[u8; 8] = b"MSIEVE2\0";

pub fn encode(program: &Program) -> Vec<u8> {
    let payload = postcard::to_allocvec(program).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
    let mut out = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(digest.as_ref());
    out.extend_from_slice(&payload);
    out
}

pub fn decode(bytes: &[u8]) -> Option<Program> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (digest, payload) = rest.split_at_checked(32)?;
    if ring::digest::digest(&ring::digest::SHA256, payload).as_ref() != digest {
        return None;
    }
    postcard::from_bytes(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_refused() {
        let script = r#"require ["fileinto", "relational", "comparator-i;ascii-numeric", "body",
            "reject", "copy", "envelope", "subaddress", "variables", "imap4flags", "vacation"];
            if anyof (header :value "ge" :comparator "i;ascii-numeric" "x-n" "5",
                      not exists "date", address :detail "to" "x",
                      envelope :domain :matches "from" "*.example", size :over 10K,
                      body :raw :contains "x", string :is "${a}" "b", hasflag "\\Seen") {
                fileinto :copy :create :flags "\\Flagged" "A/B"; redirect "a@b.example";
            } elsif false { reject "no"; } else { discard; stop; }
            set :lower :length "n" "${1}"; addflag "v" "x"; keep :flags "y";
            vacation :days 3 :subject "s" :addresses ["a@b.example"] :mime "r";"#;
        let program = crate::sieve::compile(script).unwrap();
        let bytes = encode(&program);
        assert_eq!(decode(&bytes), Some(program));
        for cut in 0..bytes.len() {
            assert_eq!(decode(bytes.get(..cut).unwrap()), None);
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x20;
            assert_eq!(decode(&damaged), None, "byte {i}");
        }
    }
}
