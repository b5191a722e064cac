//! The compose form's simple rich-text mode, without script: the user
//! writes plain text with light marks — `**bold**`, `*italic*`, lines
//! starting with `- ` as a list, blank lines between paragraphs, bare
//! `https://` links — and the message gets an HTML alternative made from
//! them beside the text as written (multipart/alternative).

use crate::escape::xml as escape;

/// The HTML alternative of `text`.
pub fn to_html(text: &str) -> String {
    let mut out = String::from("<!doctype html><html><body>\n");
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        if lines.iter().all(|l| l.trim_start().starts_with("- ")) {
            out.push_str("<ul>\n");
            for l in lines {
                out.push_str(&format!(
                    "<li>{}</li>\n",
                    inline(l.trim_start().trim_start_matches("- "))
                ));
            }
            out.push_str("</ul>\n");
        } else {
            let inner: Vec<String> = lines.iter().map(|l| inline(l)).collect();
            out.push_str(&format!("<p>{}</p>\n", inner.join("<br>\n")));
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// One line: escaped, then bold, italic and links.
fn inline(line: &str) -> String {
    let escaped = escape(line);
    let bold = pairs(&escaped, "**", "strong");
    let italic = pairs(&bold, "*", "em");
    links(&italic)
}

/// `mark`text`mark` → `<tag>text</tag>`, only for complete pairs.
fn pairs(text: &str, mark: &str, tag: &str) -> String {
    let parts: Vec<&str> = text.split(mark).collect();
    if parts.len() < 3 {
        return text.to_string();
    }
    let mut out = String::new();
    let last_pair = if parts.len() % 2 == 1 {
        parts.len()
    } else {
        parts.len() - 1
    };
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            if i < last_pair {
                let close = if i % 2 == 1 { "" } else { "/" };
                out.push_str(&format!("<{close}{tag}>"));
            } else {
                out.push_str(mark);
            }
        }
        out.push_str(part);
    }
    out
}

/// Bare `https://` and `http://` words as links.
fn links(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if (word.starts_with("https://") || word.starts_with("http://")) && !word.contains('"')
            {
                format!("<a href=\"{word}\">{word}</a>")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_become_html_and_nothing_else_does() {
        let html = to_html(
            "Hello **team**, see *this*:\nhttps://example.org/a?b=1&c=2\n\n- one\n- two <b>\n\n2 * 3 = 6",
        );
        assert!(
            html.contains("<p>Hello <strong>team</strong>, see <em>this</em>:<br>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://example.org/a?b=1&amp;c=2\">"),
            "{html}"
        );
        assert!(
            html.contains("<ul>\n<li>one</li>\n<li>two &lt;b&gt;</li>\n</ul>"),
            "{html}"
        );
        assert!(html.contains("<p>2 * 3 = 6</p>"), "{html}");
        assert!(!to_html("<script>alert(1)</script>").contains("<script"));
    }
}
