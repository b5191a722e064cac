//! RFC 5435 `enotify` with the `mailto` method (RFC 5436): the URI as a
//! script writes it (RFC 6068), decoded and checked, and `:encodeurl`.
//! The notification itself is made and sent at delivery.

/// Recipients one notification may have.
pub const MAX_RECIPIENTS: usize = 8;

/// Header fields a `mailto:` URI may set (RFC 5436 §2.2: the others,
/// `From`, `Auto-Submitted`, `Received`... are ignored).
const ALLOWED: [&str; 6] = [
    "subject",
    "cc",
    "in-reply-to",
    "references",
    "keywords",
    "comments",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailto {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Allowed fields other than To/Cc, in order.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Mailto {
    pub fn parse(uri: &str) -> Result<Mailto, String> {
        let rest = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("mailto:"))
            .and_then(|_| uri.get(7..))
            .ok_or("not a mailto: URI")?;
        let (to, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut m = Mailto {
            to: addresses(&decode(to)?)?,
            cc: Vec::new(),
            headers: Vec::new(),
            body: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?.to_ascii_lowercase();
            let value = decode(value)?;
            match name.as_str() {
                "to" => m.to.extend(addresses(&value)?),
                "cc" => m.cc.extend(addresses(&value)?),
                "body" => m.body = Some(value),
                n if ALLOWED.contains(&n) => m.headers.push((name, clean(&value))),
                _ => {}
            }
        }
        if m.to.is_empty() && m.cc.is_empty() {
            return Err("a mailto: URI without a recipient".into());
        }
        if m.to.len() + m.cc.len() > MAX_RECIPIENTS {
            return Err(format!("more than {MAX_RECIPIENTS} recipients"));
        }
        Ok(m)
    }
}

fn addresses(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match crate::address::Address::parse(a) {
            Ok(_) => Ok(a.to_string()),
            Err(_) => Err(format!("\"{a}\" is not an address")),
        })
        .collect()
}

fn clean(value: &str) -> String {
    crate::rfc5322::one_line(value, 900)
}

/// `%XX` decoding (RFC 3986 §2.1), to UTF-8.
fn decode(text: &str) -> Result<String, String> {
    crate::escape::percent_decode(text)
        .ok_or_else(|| "a bad %-escape or not UTF-8 in a URI".to_string())
}

/// RFC 5435 §6 `:encodeurl`: everything but RFC 3986's unreserved
/// characters percent-encoded.
pub fn encode_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_uris() {
        let m = Mailto::parse("mailto:alice@example.org,bob@example.org?subject=New%20mail&cc=c@example.org&from=evil@x&body=hi%0D%0A").unwrap();
        assert_eq!(m.to, ["alice@example.org", "bob@example.org"]);
        assert_eq!(m.cc, ["c@example.org"]);
        assert_eq!(m.headers, [("subject".to_string(), "New mail".to_string())]);
        assert_eq!(m.body.as_deref(), Some("hi\r\n"));
        assert!(Mailto::parse("xmpp:a@b").is_err());
        assert!(Mailto::parse("mailto:?subject=x").is_err());
        assert!(Mailto::parse("mailto:not an address").is_err());
        assert!(Mailto::parse("mailto:a@b.example?subject=%zz").is_err());
        assert_eq!(encode_url("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }
}
