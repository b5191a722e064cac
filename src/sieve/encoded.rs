//! RFC 5228 §2.4.2.4 `encoded-character`: `${hex:...}` and
//! `${unicode:...}` in strings, decoded once at compile time when the
//! script requires the extension (a malformed sequence stays as written;
//! one that decodes to no character is an error).

use super::Error;
use super::parser::{Arg, Command, Test};

/// Whether the script's leading `require`s name the extension.
pub fn required(tree: &[Command]) -> bool {
    tree.iter()
        .take_while(|c| c.name == "require")
        .flat_map(|c| &c.args)
        .any(|a| match a {
            Arg::Strings(list) => list
                .iter()
                .any(|s| s.eq_ignore_ascii_case("encoded-character")),
            _ => false,
        })
}

/// Decodes every string of the tree.
pub fn decode_tree(tree: &mut [Command]) -> Result<(), Error> {
    for c in tree {
        decode_args(&mut c.args, c.line, c.column)?;
        decode_tests(&mut c.tests)?;
        if let Some(block) = &mut c.block {
            decode_tree(block)?;
        }
    }
    Ok(())
}

fn decode_tests(tests: &mut [Test]) -> Result<(), Error> {
    for t in tests {
        decode_args(&mut t.args, t.line, t.column)?;
        decode_tests(&mut t.tests)?;
    }
    Ok(())
}

fn decode_args(args: &mut [Arg], line: u32, column: u32) -> Result<(), Error> {
    for a in args {
        if let Arg::Strings(list) = a {
            for s in list {
                if s.contains("${") {
                    *s = decode(s).map_err(|e| Error::at(line, column, e))?;
                }
            }
        }
    }
    Ok(())
}

/// One string with its encoded characters decoded.
pub fn decode(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 2..).unwrap_or_default();
        let decoded = after.find('}').and_then(|end| {
            let inner = after.get(..end)?;
            let (kind, body) = inner.split_once(':')?;
            let got = match kind.to_ascii_lowercase().as_str() {
                "hex" => hex(body),
                "unicode" => unicode(body),
                _ => return None,
            };
            Some((got, end))
        });
        match decoded {
            Some((Ok(text), end)) => {
                out.push_str(&text);
                rest = after.get(end + 1..).unwrap_or_default();
            }
            Some((Err(e), _)) => return Err(e),
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn words(body: &str) -> impl Iterator<Item = &str> {
    body.split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
}

fn hex(body: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    for word in words(body) {
        if word.len() % 2 != 0 {
            return Err(format!("bad hex-pair \"{word}\""));
        }
        for pair in word.as_bytes().chunks(2) {
            let text = std::str::from_utf8(pair).map_err(|_| "bad hex-pair".to_string())?;
            bytes.push(
                u8::from_str_radix(text, 16).map_err(|_| format!("bad hex-pair \"{text}\""))?,
            );
        }
    }
    String::from_utf8(bytes).map_err(|_| "encoded characters that are not UTF-8".to_string())
}

fn unicode(body: &str) -> Result<String, String> {
    words(body)
        .map(|w| {
            u32::from_str_radix(w, 16)
                .ok()
                .filter(|_| w.len() <= 8)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("\"{w}\" is not a Unicode character"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            decode("${hex:40}x${HEX: 73 69 65 76 65 }").unwrap(),
            "@xsieve"
        );
        assert_eq!(decode("${unicode:40} ${Unicode:1F600}").unwrap(), "@ 😀");
        assert_eq!(decode("${hex:}${unicode:}").unwrap(), "");
        assert_eq!(
            decode("${other:40} ${hex:40").unwrap(),
            "${other:40} ${hex:40"
        );
        assert!(decode("${unicode:D800}").is_err());
        assert!(decode("${hex:ff}").is_err());
        assert!(decode("${hex:4}").is_err());
    }
}
