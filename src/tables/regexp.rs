//! Postfix `regexp:` and `pcre:` tables (regexp_table(5), pcre_table(5)),
//! read from existing Postfix files unchanged:
//!
//! ```text
//! # comment
//! /^Subject: .*viagra/      REJECT no thanks
//! !/^From: .*@example\.org/ DUNNO
//! if /^Received:/
//! /from .*\.invalid/        HOLD bad relay
//! endif
//! ```
//!
//! Patterns are tried in order and the first match wins; its result may
//! use `$1`..`$9` / `${n}` for captured text (`$$` is a dollar). Matching
//! is case-insensitive unless the `i` flag toggles it. A line starting
//! with whitespace continues the one before. The Rust `regex` engine does
//! the matching: patterns with back-references or look-around (PCRE only)
//! are refused when the table is loaded, with the file and line.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Bounds, so a table cannot make a regex compile into a giant automaton.
const MAX_PATTERN_BYTES: usize = 4096;
const COMPILED_SIZE_LIMIT: usize = 2 << 20;

#[derive(Debug)]
enum Entry {
    Rule {
        re: Regex,
        negate: bool,
        result: String,
    },
    /// `if /re/` ... `endif`: the rules up to `end` (an index into the
    /// entry list) apply only when `re` matches (or, negated, does not).
    If {
        re: Regex,
        negate: bool,
        end: usize,
    },
    Endif,
}

#[derive(Debug)]
pub struct RegexpTable {
    entries: Vec<Entry>,
    /// Every pattern at once, for a table of plain rules (no `if`, no
    /// `!`): most lines match none, and one pass of the set says so
    /// instead of one pass per pattern (header_checks run on every line).
    prefilter: Option<RegexSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Regexp,
    Pcre,
}

impl RegexpTable {
    /// Parses the table text; `origin` names it in errors (`file:line`).
    pub fn parse(text: &str, dialect: Dialect, origin: &str) -> Result<RegexpTable, String> {
        let mut entries = Vec::new();
        let mut inline: Vec<String> = Vec::new();
        let mut open_ifs: Vec<usize> = Vec::new();
        for (lineno, line) in logical_lines(text) {
            let at = || format!("{origin}:{lineno}");
            let trimmed = line.trim();
            if trimmed.eq_ignore_ascii_case("endif") {
                let Some(start) = open_ifs.pop() else {
                    return Err(format!("{}: endif without if", at()));
                };
                let end = entries.len();
                if let Some(Entry::If { end: e, .. }) = entries.get_mut(start) {
                    *e = end;
                }
                entries.push(Entry::Endif);
                continue;
            }
            let (is_if, rest) = match trimmed.get(..3) {
                Some(word)
                    if word.eq_ignore_ascii_case("if ") || word.eq_ignore_ascii_case("if\t") =>
                {
                    (true, trimmed[3..].trim_start())
                }
                _ => (false, trimmed),
            };
            let (negate, rest) = match rest.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let (re, result, flagged) =
                split_pattern(rest, dialect).map_err(|e| format!("{}: {e}", at()))?;
            inline.push(flagged);
            if is_if {
                if !result.trim().is_empty() {
                    return Err(format!("{}: text after the pattern of an if", at()));
                }
                open_ifs.push(entries.len());
                entries.push(Entry::If { re, negate, end: 0 });
            } else {
                let result = result.trim().to_string();
                if result.is_empty() {
                    return Err(format!("{}: a pattern without a result", at()));
                }
                if negate && result.contains('$') && !result.contains("$$") {
                    return Err(format!(
                        "{}: a negated pattern has nothing to substitute for $n",
                        at()
                    ));
                }
                entries.push(Entry::Rule { re, negate, result });
            }
        }
        if !open_ifs.is_empty() {
            return Err(format!("{origin}: if without endif"));
        }
        let plain = entries
            .iter()
            .all(|e| matches!(e, Entry::Rule { negate: false, .. }));
        // A set too large to build is only a missed shortcut.
        let prefilter = (plain && inline.len() > 1)
            .then(|| {
                RegexSetBuilder::new(&inline)
                    .size_limit(COMPILED_SIZE_LIMIT * 8)
                    .build()
                    .ok()
            })
            .flatten();
        Ok(RegexpTable { entries, prefilter })
    }

    /// The result of the first rule that matches `input`, substituted.
    pub fn lookup(&self, input: &str) -> Option<String> {
        if let Some(set) = &self.prefilter
            && !set.is_match(input)
        {
            return None;
        }
        let mut i = 0;
        while let Some(entry) = self.entries.get(i) {
            match entry {
                Entry::If { re, negate, end } => {
                    if re.is_match(input) == *negate {
                        i = *end; // skip the block; its Endif follows
                    }
                }
                Entry::Endif => {}
                Entry::Rule { re, negate, result } => {
                    if *negate {
                        if !re.is_match(input) {
                            return Some(result.replace("$$", "$"));
                        }
                    } else if let Some(caps) = re.captures(input) {
                        return Some(substitute(result, &caps));
                    }
                }
            }
            i += 1;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, Entry::Rule { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Joins continuation lines (leading whitespace) and drops comments and
/// blank lines; yields (first line number, text).
pub(crate) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some((_, last)) = out.last_mut()
        {
            last.push(' ');
            last.push_str(trimmed);
            continue;
        }
        out.push((i + 1, line.trim_end().to_string()));
    }
    out
}

/// `/pattern/flags rest` → the compiled pattern, `rest`, and the pattern
/// with its flags inline (`(?i-msxU:...)`, for the table's set). Any
/// non-space character may delimit (Postfix allows e.g. `#pattern#`).
fn split_pattern(text: &str, dialect: Dialect) -> Result<(Regex, &str, String), String> {
    let mut chars = text.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err("missing pattern".into());
    };
    if delim.is_alphanumeric() || delim.is_whitespace() || delim == '\\' {
        return Err(format!(
            "a pattern must start with a delimiter such as /, not `{delim}`"
        ));
    }
    let body_start = delim.len_utf8();
    let mut escaped = false;
    let mut end = None;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or_else(|| format!("pattern not closed by `{delim}`"))?;
    let pattern = &text[body_start..end];
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!("pattern longer than {MAX_PATTERN_BYTES} bytes"));
    }
    let after = &text[end + delim.len_utf8()..];
    let flags_len = after
        .find(|c: char| c.is_whitespace())
        .unwrap_or(after.len());
    let (flags, rest) = after.split_at(flags_len);
    let mut insensitive = true;
    let mut multi_line = false;
    let mut dot_all = false;
    let mut extended = false;
    let mut ungreedy = false;
    for f in flags.chars() {
        match (f, dialect) {
            ('i', _) => insensitive = !insensitive,
            ('m', _) => multi_line = !multi_line,
            ('x', Dialect::Pcre) => extended = !extended,
            // regexp_table(5): x toggles POSIX extended syntax, which the
            // Rust engine always speaks.
            ('x', Dialect::Regexp) => {}
            ('s', Dialect::Pcre) => dot_all = !dot_all,
            ('U', Dialect::Pcre) => ungreedy = !ungreedy,
            // A (anchored), E (dollar end-only), X: accepted, no effect
            // the engine needs (anchors are written in the pattern).
            ('A' | 'E' | 'X', Dialect::Pcre) => {}
            _ => return Err(format!("unknown pattern flag `{f}`")),
        }
    }
    let re = RegexBuilder::new(pattern)
        .case_insensitive(insensitive)
        .multi_line(multi_line)
        .dot_matches_new_line(dot_all)
        .ignore_whitespace(extended)
        .swap_greed(ungreedy)
        .size_limit(COMPILED_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("bad pattern /{pattern}/: {}", first_line(&e.to_string())))?;
    let (mut on, mut off) = (String::new(), String::new());
    for (flag, set) in [
        ('i', insensitive),
        ('m', multi_line),
        ('s', dot_all),
        ('x', extended),
        ('U', ungreedy),
    ] {
        if set { &mut on } else { &mut off }.push(flag);
    }
    // In x mode a newline ends a `#` comment that would otherwise swallow
    // the closing `)`; elsewhere it would be a character to match.
    let tail = if extended { "\n" } else { "" };
    let flagged = format!("(?{on}-{off}:{pattern}{tail})");
    Ok((re, rest, flagged))
}

fn first_line(text: &str) -> String {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

/// `$n`, `${n}` and `$$` in a result.
fn substitute(result: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::with_capacity(result.len());
    let mut rest = result;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            match r.find('}') {
                Some(close) => {
                    if let Ok(n) = r[..close].parse::<usize>() {
                        out.push_str(caps.get(n).map(|m| m.as_str()).unwrap_or(""));
                    }
                    rest = &r[close + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else if let Some(d) = after.chars().next().filter(char::is_ascii_digit) {
            let n = d.to_digit(10).unwrap_or(0) as usize;
            out.push_str(caps.get(n).map(|m| m.as_str()).unwrap_or(""));
            rest = &after[1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefilter_agrees_with_the_rules() {
        let text = "/^Subject:.*viagra/ REJECT a\n/FOO/i REJECT b\n/x y # comment/x REJECT c\n/^a.b$/s REJECT d\n";
        let t = RegexpTable::parse(text, Dialect::Pcre, "t").unwrap();
        assert!(t.prefilter.is_some());
        let cases = [
            ("subject: cheap VIAGRA", Some("REJECT a")),
            ("FOO", Some("REJECT b")),
            ("foo", None),
            ("xy", Some("REJECT c")),
            ("a\nb", Some("REJECT d")),
            ("nothing", None),
        ];
        for (input, want) in cases {
            assert_eq!(t.lookup(input).as_deref(), want, "{input:?}");
        }
        let negated =
            RegexpTable::parse("!/ok/ REJECT x\n/a/ DUNNO\n", Dialect::Regexp, "t").unwrap();
        assert!(negated.prefilter.is_none());
    }

    fn table(text: &str) -> RegexpTable {
        RegexpTable::parse(text, Dialect::Pcre, "test").expect("table")
    }

    #[test]
    fn first_match_wins_case_insensitively_with_substitution() {
        let t = table(
            "# spam words\n/^Subject: .*(viagra|casino)/ REJECT no $1 here\n/^Subject:/ DUNNO\n",
        );
        assert_eq!(
            t.lookup("subject: cheap VIAGRA").as_deref(),
            Some("REJECT no VIAGRA here")
        );
        assert_eq!(t.lookup("Subject: hello").as_deref(), Some("DUNNO"));
        assert_eq!(t.lookup("From: x"), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn flags_negation_if_blocks_and_continuations() {
        let t = table(
            "if /^Received:/\n/from [^ ]+\\.invalid/ HOLD\n  bad relay\nendif\n!/@example\\.org/ WARN foreign $$1\n/Case/i DUNNO\n",
        );
        assert_eq!(
            t.lookup("Received: from x.invalid").as_deref(),
            Some("HOLD bad relay")
        );
        assert_eq!(t.lookup("From: a@example.org"), None);
        assert_eq!(
            t.lookup("From: a@b.net").as_deref(),
            Some("WARN foreign $1")
        );
        // `i` toggles to case-sensitive.
        let t = table("/Case/i DUNNO\n");
        assert_eq!(t.lookup("case"), None);
        assert!(t.lookup("Case").is_some());
        let t = table("%^Subject: x%  REJECT\n");
        assert!(t.lookup("subject: x").is_some());
    }

    #[test]
    fn bad_tables_name_the_line() {
        for (text, want) in [
            ("/unclosed REJECT\n", "test:1: pattern not closed"),
            ("/a/ REJECT\n/(?<=x)y/ REJECT\n", "test:2: bad pattern"),
            ("/a/\n", "test:1: a pattern without a result"),
            ("if /a/\n/b/ OK\n", "if without endif"),
            ("endif\n", "test:1: endif without if"),
            ("/a/q OK\n", "unknown pattern flag"),
            ("abc OK\n", "delimiter"),
        ] {
            let err = RegexpTable::parse(text, Dialect::Pcre, "test").unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
