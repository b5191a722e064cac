//! Mail HTML made harmless before a browser sees it: ammonia keeps a
//! list of known-safe elements and attributes (no script, no event
//! handlers, no `javascript:`, no forms, no `<base>`, no `<meta>`), links
//! open outside the frame, `cid:` images become `data:` URLs of the
//! message's own parts, and remote images are dropped until the user asks
//! for them. The page that frames it adds a sandbox and a CSP that forbids
//! script and remote loads too, so one layer failing is not enough.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The sanitised HTML and whether remote images were dropped from it.
pub struct Clean {
    pub html: String,
    pub blocked_images: bool,
}

/// Cleans `html`. `inline` maps Content-IDs (without `<>`) to `data:`
/// URLs; `remote_images` keeps `http(s):` image sources.
pub fn clean(html: &str, inline: HashMap<String, String>, remote_images: bool) -> Clean {
    let blocked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = blocked.clone();
    let inline = Arc::new(inline);
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(HashSet::from(["http", "https", "mailto", "cid", "data"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .add_generic_attributes(["style", "align", "valign", "bgcolor", "width", "height"])
        .add_tag_attributes("table", ["border", "cellpadding", "cellspacing"])
        .add_tag_attributes("font", ["color", "face", "size"])
        .add_tags(["font", "center"])
        .attribute_filter(move |element, attribute, value| {
            let lower = value.trim_start().to_ascii_lowercase();
            match (element, attribute) {
                ("img", "src") => {
                    if lower.starts_with("cid:") {
                        // The Content-ID as written (they are case-sensitive).
                        let cid = value.trim_start().get(4..).unwrap_or_default();
                        let cid =
                            crate::escape::percent_decode(cid).unwrap_or_else(|| cid.to_string());
                        return inline.get(&cid).map(|u| Cow::Owned(u.clone()));
                    }
                    if lower.starts_with("data:image/") {
                        return Some(Cow::Owned(value.to_string()));
                    }
                    if remote_images && (lower.starts_with("https:") || lower.starts_with("http:"))
                    {
                        return Some(Cow::Owned(value.to_string()));
                    }
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                    None
                }
                (_, "href") if lower.starts_with("cid:") || lower.starts_with("data:") => None,
                // CSS may load images and fonts too: blocked by the
                // frame's CSP; a style that names a URL is dropped here
                // (it is how trackers hide), as is IE's expression().
                // Escapes (`\75rl(`) and image-set() hide URLs too.
                (_, "style")
                    if ["url(", "expression", "@import", "image-set", "\\"]
                        .iter()
                        .any(|bad| lower.contains(bad)) =>
                {
                    None
                }
                _ => Some(Cow::Owned(value.to_string())),
            }
        });
    let bounded = limit_nesting(html, MAX_DEPTH);
    let html = builder.clean(&bounded).to_string();
    Clean {
        html,
        blocked_images: blocked.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// Elements open at once that the parser is given. html5ever checks the
/// stack of open elements for many tags, so a message of a million nested
/// `<div>`s would cost it a million squared steps; deeper tags are dropped
/// before it sees them (no real mail nests this deep).
const MAX_DEPTH: usize = 256;
/// Tags passed on at most; the rest of a bigger message is its text.
const MAX_TAGS: usize = 100_000;

/// Elements that never have content, so they do not nest.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements a parser closes when the next of their kind opens (`<p>a<p>b`).
const SELF_ENDING: &[&str] = &["p", "li", "dt", "dd", "tr", "td", "th", "option"];

/// `html` with start tags beyond `max` open elements (and their end tags,
/// and every tag past [`MAX_TAGS`]) left out. The scan follows HTML's
/// tokenizer where it matters for counting: comments and `<!...>` are
/// skipped, quoted attribute values may hold `>`, `/>` does not close a
/// non-void element, and an end tag closes only an element that is open.
/// What it passes on is still parsed and cleaned by ammonia; this only
/// bounds the parser's work, and errs only by counting too many open.
fn limit_nesting(html: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let bytes = html.as_bytes();
    let mut out: Option<String> = None;
    let mut open: Vec<String> = Vec::new();
    let (mut dropped_open, mut tags, mut copied, mut i) = (0usize, 0usize, 0usize, 0usize);
    while let Some(offset) = memchr::memchr(b'<', bytes.get(i..).unwrap_or_default()) {
        let start = i + offset;
        let rest = bytes.get(start..).unwrap_or_default();
        let end = if rest.starts_with(b"<!--") {
            memchr::memmem::find(rest, b"-->").map_or(bytes.len(), |n| start + n + 3)
        } else {
            tag_end(rest).map_or(bytes.len(), |n| start + n)
        };
        let tag = html
            .get(start + 1..end.saturating_sub(1))
            .unwrap_or_default();
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let mut drop = false;
        if !name.is_empty() && !rest.starts_with(b"<!") {
            tags += 1;
            if tags > MAX_TAGS {
                drop = true;
            } else if closing {
                if let Some(at) = open.iter().rposition(|n| *n == name) {
                    open.truncate(at);
                } else if dropped_open > 0 {
                    dropped_open -= 1;
                    drop = true;
                }
            } else if !VOID.contains(&name.as_str()) {
                if SELF_ENDING.contains(&name.as_str()) && open.last() == Some(&name) {
                    open.pop();
                }
                if open.len() >= max {
                    dropped_open += 1;
                    drop = true;
                } else {
                    open.push(name);
                }
            }
        }
        if drop {
            let buf = out.get_or_insert_with(|| String::with_capacity(html.len()));
            buf.push_str(html.get(copied..start).unwrap_or_default());
            copied = end;
        }
        if end >= bytes.len() {
            break;
        }
        i = end;
    }
    match out {
        None => std::borrow::Cow::Borrowed(html),
        Some(mut buf) => {
            buf.push_str(html.get(copied..).unwrap_or_default());
            std::borrow::Cow::Owned(buf)
        }
    }
}

/// Where a tag starting at `tag[0] == b'<'` ends (after its `>`), quoted
/// attribute values skipped; `None` when it does not end.
fn tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (k, &b) in tag.iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(k + 1),
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(html: &str) -> String {
        clean(html, HashMap::new(), false).html
    }

    #[test]
    fn hostile_markup_goes() {
        let hostile = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<div style=\"width: expression(alert(1))\">x</div>",
            "<svg><script>alert(1)</script></svg>",
            "<meta http-equiv=refresh content=\"0;url=https://evil.test/\">",
            "<base href=\"https://evil.test/\">",
            "<iframe src=\"https://evil.test/\"></iframe>",
            "<form action=\"https://evil.test/\"><input name=p></form>",
            "<object data=\"x.swf\"></object><embed src=\"x.swf\">",
            "<style>body{background:url(https://evil.test/t.png)}</style>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<body onload=alert(1)>",
            "<<script>script>alert(1)<</script>/script>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        ];
        for html in hostile {
            let out = cleaned(html).to_ascii_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "javascript:",
                "expression(",
                "<meta",
                "<base",
                "<iframe",
                "<form",
                "<object",
                "<embed",
                "<style",
                "data:text",
                "evil.test",
            ] {
                assert!(!out.contains(bad), "{html:?} gave {out:?}");
            }
        }
    }

    #[test]
    fn images_are_inline_or_asked_for() {
        let html = "<p style=\"color:red\">Hi <a href=\"https://x.test/\">link</a></p><img src=\"cid:logo@x\"><img src=\"https://tracker.test/p.gif\">";
        let inline = HashMap::from([(
            "logo@x".to_string(),
            "data:image/png;base64,AAAA".to_string(),
        )]);
        let out = clean(html, inline.clone(), false);
        assert!(out.blocked_images);
        assert!(
            out.html.contains("data:image/png;base64,AAAA"),
            "{}",
            out.html
        );
        assert!(!out.html.contains("tracker.test"));
        assert!(out.html.contains("target=\"_blank\"") && out.html.contains("noopener"));
        assert!(out.html.contains("color:red"));
        let shown = clean(html, inline, true);
        assert!(!shown.blocked_images && shown.html.contains("tracker.test"));
    }

    #[test]
    fn ten_megabytes_of_nested_tags_end() {
        let html = format!(
            "{}<script>alert(1)</script>{}",
            "<div>".repeat(2_000_000),
            "</div>".repeat(2_000_000)
        );
        let out = cleaned(&html);
        assert!(
            !out.contains("<script") && out.matches("<div>").count() <= MAX_DEPTH,
            "{}",
            out.len()
        );
        let kept = limit_nesting("<p><b>x</b><br><img src=a></p>", 2);
        assert_eq!(kept, "<p><b>x</b><br><img src=a></p>");
        assert_eq!(
            limit_nesting("<a><b><c>x</c></b></a>", 2),
            "<a><b>x</b></a>"
        );
    }

    #[test]
    fn the_nesting_count_cannot_be_fooled() {
        for trick in [
            "<div/>",
            "<div></x>",
            "<div title=\"></div>\">",
            "<div><!--</div>-->",
        ] {
            let html = trick.repeat(100_000);
            let kept = limit_nesting(&html, MAX_DEPTH);
            assert!(
                kept.matches("<div").count() <= MAX_DEPTH,
                "{trick}: {}",
                kept.matches("<div").count()
            );
        }
        // Sloppy but ordinary: 1,000 unclosed paragraphs keep their markup.
        let paragraphs = "<p>text".repeat(1000);
        assert_eq!(limit_nesting(&paragraphs, MAX_DEPTH), paragraphs);
        let cleaned = clean(&"<div/>".repeat(200_000), HashMap::new(), false).html;
        assert!(cleaned.matches("<div>").count() <= MAX_DEPTH);
        // An Outlook Content-ID keeps its case.
        let inline = HashMap::from([(
            "image001.png@01D9A1B2".to_string(),
            "data:image/png;base64,AA".to_string(),
        )]);
        assert!(
            clean("<img src=\"cid:image001.png@01D9A1B2\">", inline, false)
                .html
                .contains("data:image/png")
        );
    }
}
