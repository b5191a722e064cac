//! The text of an HTML fragment, for previews and the spam filter's
//! tokens: not a renderer, just the characters between the tags.

/// `html` with its tags replaced by spaces. With `keep_attributes`, what
/// is inside a tag stays too, its quotes and `=` turned into spaces, so
/// `href` values (the links) remain as words.
pub fn text(html: &str, keep_attributes: bool) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            '"' | '\'' | '=' if in_tag && keep_attributes => out.push(' '),
            _ if !in_tag || keep_attributes => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_go_and_attributes_stay_when_asked() {
        let html = "<p>Hi <a href=\"http://x.test/\">there</a></p>";
        assert_eq!(
            super::text(html, false)
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["Hi", "there"]
        );
        assert!(super::text(html, true).contains("http://x.test/"));
    }
}
