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
                    if let Some(cid) = lower.strip_prefix("cid:") {
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
                (_, "style")
                    if lower.contains("url(")
                        || lower.contains("expression")
                        || lower.contains("@import") =>
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

/// Elements that never have content, so they do not nest.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// `html` with start tags beyond `max` open elements (and as many end
/// tags) left out. A rough tokenizer is enough: what it passes on is
/// still parsed and cleaned by ammonia, this only bounds the work.
fn limit_nesting(html: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let bytes = html.as_bytes();
    let mut out: Option<String> = None;
    let (mut depth, mut dropped, mut copied, mut i) = (0usize, 0usize, 0usize, 0usize);
    while let Some(offset) = memchr::memchr(b'<', bytes.get(i..).unwrap_or_default()) {
        let start = i + offset;
        let Some(len) = memchr::memchr(b'>', bytes.get(start..).unwrap_or_default()) else {
            break;
        };
        let end = start + len + 1;
        let tag = html.get(start + 1..end - 1).unwrap_or_default();
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let opens =
            !closing && !name.is_empty() && !tag.ends_with('/') && !VOID.contains(&name.as_str());
        let mut drop = false;
        if opens {
            if depth >= max {
                dropped += 1;
                drop = true;
            } else {
                depth += 1;
            }
        } else if closing && !name.is_empty() {
            if dropped > 0 {
                dropped -= 1;
                drop = true;
            } else {
                depth = depth.saturating_sub(1);
            }
        }
        if drop {
            let buf = out.get_or_insert_with(|| String::with_capacity(html.len()));
            buf.push_str(html.get(copied..start).unwrap_or_default());
            copied = end;
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
}
