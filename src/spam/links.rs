//! The domains of the links in a message's text, for the URI blocklists
//! and as classifier tokens: `http://`, `https://` and bare `www.` hosts,
//! reduced to the registered domain (the name a blocklist lists), distinct,
//! in order of appearance, bounded.

/// Link starts looked at per message, at most (10,000 links cost a few
/// milliseconds, not a lookup each).
const MAX_SCANNED: usize = 10_000;

/// Up to `max` distinct registered domains of the links in `text`.
pub fn domains(text: &str, max: usize) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    let mut finder = Finder::new(&lower);
    let mut scanned = 0;
    while out.len() < max && scanned < MAX_SCANNED {
        let Some(found) = finder.next_link() else {
            break;
        };
        scanned += 1;
        let (host, end) = host_at(&lower, found);
        finder.skip_to(end.max(found + 1));
        if let Some(domain) = registered(host)
            && !out.contains(&domain)
        {
            out.push(domain);
        }
    }
    out
}

/// Finds link starts in one pass: the next `://` and `www.` are searched
/// for only once passed, so a text with many of one and none of the other
/// costs linear time.
struct Finder<'a> {
    text: &'a str,
    at: usize,
    scheme: Option<Option<usize>>,
    www: Option<Option<usize>>,
}

impl<'a> Finder<'a> {
    fn new(text: &'a str) -> Self {
        Finder {
            text,
            at: 0,
            scheme: None,
            www: None,
        }
    }

    fn skip_to(&mut self, at: usize) {
        // Never inside a character: `get(at..)` would fail there and hide
        // every later link.
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at += 1;
        }
        self.at = at;
        if matches!(self.scheme, Some(Some(p)) if p < at) {
            self.scheme = None;
        }
        if matches!(self.www, Some(Some(p)) if p < at) {
            self.www = None;
        }
    }

    fn search(&self, needle: &str) -> Option<usize> {
        self.text
            .get(self.at..)
            .and_then(|rest| rest.find(needle))
            .map(|i| self.at + i)
    }

    /// Where the next host starts (after `http://`/`https://`, or at `www.`).
    fn next_link(&mut self) -> Option<usize> {
        loop {
            if self.scheme.is_none() {
                self.scheme = Some(self.search("://"));
            }
            if self.www.is_none() {
                self.www = Some(self.search("www."));
            }
            let scheme = self.scheme.flatten();
            let www = self.www.flatten();
            match (scheme, www) {
                (Some(s), w) if w.is_none_or(|w| s < w) => {
                    let before = self.text.get(..s).unwrap_or_default();
                    if before.ends_with("http") || before.ends_with("https") {
                        return Some(s + 3);
                    }
                    // Another scheme (ftp://): look past it.
                    self.skip_to(s + 3);
                }
                (_, Some(w)) => return Some(w),
                (_, None) => return None,
            }
        }
    }
}

/// The host at `start` and where it ends.
fn host_at(text: &str, start: usize) -> (&str, usize) {
    let rest = text.get(start..).unwrap_or_default();
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '@'))
        .unwrap_or(rest.len());
    let host = rest.get(..len).unwrap_or_default();
    // user@host: the host is what follows the last @.
    let host = host.rsplit('@').next().unwrap_or(host);
    (host.trim_matches('.'), start + len)
}

/// The registered domain of `host`: its last two labels, or three under
/// the common two-level public suffixes (`example.co.uk`). An address
/// literal or a single label is no domain.
fn registered(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 || labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let n = labels.len();
    let tld = labels.get(n - 1)?;
    let second = labels.get(n - 2)?;
    let two_level = tld.len() == 2
        && [
            "co", "com", "net", "org", "ac", "gov", "edu", "or", "ne", "go",
        ]
        .contains(second);
    let take = if two_level && n >= 3 { 3 } else { 2 };
    Some(labels.get(n - take..)?.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_link_domains() {
        let text = "Visit http://Shop.Spam.TEST/buy?x=1 or https://www.example.co.uk/, \
                    mail me at x@y.z, see www.other.example and ftp://skip.test and \
                    http://192.0.2.1/ and http://user@evil.test/ and http://shop.spam.test again";
        assert_eq!(
            domains(text, 10),
            ["spam.test", "example.co.uk", "other.example", "evil.test"]
        );
        assert_eq!(domains(text, 2).len(), 2);
        let after_odd = "http://é.test/ then http://later.test/";
        assert_eq!(domains(after_odd, 5), ["later.test"]);
    }

    #[test]
    fn ten_thousand_links_are_bounded() {
        let text: String = (0..20_000).map(|n| format!("http://d{n}.test/ ")).collect();
        assert_eq!(domains(&text, 20).len(), 20);
        let same = "http://a.test/ ".repeat(20_000);
        assert_eq!(domains(&same, 20), ["a.test"]);
    }
}
