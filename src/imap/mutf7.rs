//! Modified UTF-7, the mailbox-name encoding of IMAP4rev1 (RFC 3501
//! §5.1.3), for clients that have not enabled UTF8=ACCEPT (RFC 6855).
//!
//! Printable US-ASCII (0x20-0x7e) stands for itself, except `&`, which is
//! written `&-`. Anything else is UTF-16 in a modified base64 (`,` instead
//! of `/`, no padding) between `&` and `-`. The store keeps names in
//! UTF-8; the IMAP layer converts at the edge with [`encode`] and
//! [`decode`].
//!
//! [`decode`] accepts only the canonical spelling, the one [`encode`]
//! produces, so that one mailbox has exactly one modified UTF-7 name: it
//! refuses 8-bit and control octets, unterminated or empty shifts (`&A`,
//! `&-` aside), printable ASCII in base64, two adjacent shifts, non-zero
//! pad bits, and unpaired surrogates.

use std::fmt;

/// Why a name is not canonical modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// An octet above 0x7e (8-bit data, e.g. raw UTF-8).
    EightBit,
    /// A control octet outside a base64 run.
    Control,
    /// `&` not closed by `-`, or a character outside the base64 alphabet.
    Unterminated,
    /// Base64 that is not the shortest spelling: left-over bits, too many
    /// characters for the code units, or an empty run.
    BadBase64,
    /// A character that must be written as itself (printable ASCII, `&`)
    /// was base64-encoded.
    NotCanonical,
    /// A base64 run right after another one: the encoder joins them.
    AdjacentShifts,
    /// An unpaired UTF-16 surrogate.
    Surrogate,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::EightBit => "8-bit characters (ENABLE UTF8=ACCEPT to use UTF-8)",
            Error::Control => "control characters",
            Error::Unterminated => "a base64 run not ended by '-'",
            Error::BadBase64 => "invalid base64",
            Error::NotCanonical => "base64-encoded printable ASCII",
            Error::AdjacentShifts => "two adjacent base64 runs",
            Error::Surrogate => "an unpaired UTF-16 surrogate",
        })
    }
}

impl std::error::Error for Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Whether `c` is written as itself (`&` is, but doubled as `&-`).
fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// The base64 character for the low six bits of `v`.
fn base64_char(v: u32) -> char {
    let index = usize::try_from(v & 0x3f).unwrap_or_default();
    ALPHABET.get(index).copied().map_or('A', char::from)
}

fn sextet(b: u8) -> Option<u32> {
    crate::auth::base64_value(b, b',').map(u32::from)
}

/// `name` (UTF-8) in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut units: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut out, &mut units);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut units);
    out
}

/// Writes pending UTF-16 units as one `&...-` run.
fn flush(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &unit in units.iter() {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(base64_char(acc >> bits));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base64_char(acc << (6 - bits)));
    }
    out.push('-');
    units.clear();
}

/// The UTF-8 name for a canonical modified UTF-7 `name`.
pub fn decode(name: &str) -> Result<String, Error> {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    // Where the last base64 run ended, to spot `&..-&..-`.
    let mut last_run_end = None;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'&' => {
                let start = i + 1;
                let len = bytes
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&c| sextet(c).is_none())
                    .ok_or(Error::Unterminated)?;
                let end = start + len;
                if bytes.get(end) != Some(&b'-') {
                    return Err(match bytes.get(end) {
                        Some(&c) if c >= 0x80 => Error::EightBit,
                        _ => Error::Unterminated,
                    });
                }
                if len == 0 {
                    out.push('&');
                } else {
                    if last_run_end == Some(i) {
                        return Err(Error::AdjacentShifts);
                    }
                    decode_run(bytes.get(start..end).unwrap_or_default(), &mut out)?;
                    last_run_end = Some(end + 1);
                }
                i = end + 1;
            }
            0x20..=0x7e => {
                out.push(char::from(b));
                i += 1;
            }
            0x80.. => return Err(Error::EightBit),
            _ => return Err(Error::Control),
        }
    }
    Ok(out)
}

/// Decodes one base64 run (between `&` and `-`, non-empty).
fn decode_run(run: &[u8], out: &mut String) -> Result<(), Error> {
    let mut units: Vec<u16> = Vec::with_capacity(run.len() * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in run {
        let v = sextet(b).ok_or(Error::BadBase64)?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(u16::try_from((acc >> bits) & 0xffff).map_err(|_| Error::BadBase64)?);
            acc &= (1 << bits) - 1;
        }
    }
    // The shortest spelling leaves fewer than 6 bits over, all zero.
    if bits >= 6 || acc != 0 || units.is_empty() {
        return Err(Error::BadBase64);
    }
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| Error::Surrogate)?;
        if is_direct(c) {
            return Err(Error::NotCanonical);
        }
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        let utf8 = "~peter/mail/台北/日本語";
        let mutf7 = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(utf8), mutf7);
        assert_eq!(decode(mutf7).as_deref(), Ok(utf8));
    }

    #[test]
    fn ampersand_and_ascii() {
        assert_eq!(encode("&"), "&-");
        assert_eq!(decode("&-").as_deref(), Ok("&"));
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Ok("Tom & Jerry"));
        assert_eq!(encode("INBOX/Sent Items"), "INBOX/Sent Items");
        assert_eq!(decode("a-b+c,d").as_deref(), Ok("a-b+c,d"));
        assert_eq!(decode("").as_deref(), Ok(""));
        assert_eq!(encode("&&"), "&-&-");
        assert_eq!(decode("&-&-").as_deref(), Ok("&&"));
    }

    #[test]
    fn common_names() {
        for (utf8, mutf7) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
            ("Корзина", "&BBoEPgRABDcEOAQ9BDA-"),
            ("Ärger/ä", "&AMQ-rger/&AOQ-"),
            ("日本語&x", "&ZeVnLIqe-&-x"),
        ] {
            assert_eq!(encode(utf8), mutf7, "{utf8}");
            assert_eq!(decode(mutf7).as_deref(), Ok(utf8), "{mutf7}");
        }
    }

    #[test]
    fn astral_characters_use_surrogate_pairs() {
        for utf8 in ["😀", "a😀b", "𝄞 music/📁", "台😀北", "\u{10FFFF}"] {
            let encoded = encode(utf8);
            assert!(encoded.is_ascii(), "{encoded}");
            assert_eq!(decode(&encoded).as_deref(), Ok(utf8), "{encoded}");
        }
        // U+1F600 is D83D DE00.
        assert_eq!(encode("😀"), "&2D3eAA-");
    }

    #[test]
    fn round_trips_every_length() {
        // Runs of 1..=7 UTF-16 units exercise every pad width.
        for n in 1..=7 {
            let s: String = std::iter::repeat_n('é', n).collect();
            let mixed = format!("x{s}y{s}");
            assert_eq!(decode(&encode(&mixed)).as_deref(), Ok(mixed.as_str()));
        }
    }

    #[test]
    fn refuses_what_encode_never_writes() {
        let table: &[(&[u8], Error)] = &[
            (b"caf\xc3\xa9", Error::EightBit),
            ("café".as_bytes(), Error::EightBit),
            (b"a\x01b", Error::Control),
            (b"a\x7fb", Error::Control),
            (b"&", Error::Unterminated),
            (b"&AOQ", Error::Unterminated),
            (b"&AOQ x", Error::Unterminated),
            (b"Tom & Jerry", Error::Unterminated),
            (b"&A-", Error::BadBase64),
            // Non-zero pad bits.
            (b"&AOR-", Error::BadBase64),
            // An extra character: 24 bits for one 16-bit unit.
            (b"&AOQA-", Error::BadBase64),
            // "a" (U+0061) must be written as itself.
            (b"&AGE-", Error::NotCanonical),
            // "&" (U+0026) must be written "&-".
            (b"&ACY-", Error::NotCanonical),
            (b"&AOQ-&AOQ-", Error::AdjacentShifts),
            // A lone high surrogate, a lone low surrogate.
            (b"&2D0-", Error::Surrogate),
            (b"&3gA-", Error::Surrogate),
        ];
        for (input, want) in table {
            let input = std::str::from_utf8(input).unwrap_or("\u{FFFD}");
            assert_eq!(decode(input), Err(*want), "{input:?}");
        }
        // A surrogate pair split over two runs is two lone surrogates.
        assert!(decode("&2D0-x&3gA-").is_err());
        // Not adjacent: an ASCII character in between.
        assert_eq!(decode("&AOQ-x&AOQ-").as_deref(), Ok("äxä"));
    }

    /// Canonical means: whatever decodes, encodes back to the same text.
    /// Random strings over an alphabet dense in `&`, `-` and base64.
    #[test]
    fn decode_accepts_only_what_encode_writes() {
        let alphabet = b"&&&---AAOQZeVn2D3cwgI+,a/ \x01\x80";
        let mut rng = fastrand::Rng::with_seed(6855);
        let mut decoded = 0;
        for _ in 0..200_000 {
            let len = rng.usize(0..12);
            let input: String = (0..len)
                .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
                .collect();
            if let Ok(utf8) = decode(&input) {
                decoded += 1;
                assert_eq!(encode(&utf8), input, "{input:?} -> {utf8:?}");
            }
        }
        assert!(decoded > 1000, "{decoded}");
    }

    #[test]
    fn every_bmp_character_round_trips() {
        let all: String = (0x80u32..0x1_0000)
            .step_by(7)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(decode(&encode(&all)).as_deref(), Ok(all.as_str()));
    }
}
