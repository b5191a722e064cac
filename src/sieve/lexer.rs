//! Sieve's tokens (RFC 5228 §2, §8.1): identifiers, `:tags`, numbers with
//! K/M/G quantifiers, quoted strings with `\` escapes, `text:` multi-line
//! strings ending at a line of one dot (dot-stuffed), the punctuation
//! `( ) [ ] { } , ;`, and `#` / `/* */` comments. Every token has its
//! line and column, for error messages.

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Identifier(String),
    Tag(String),
    Number(u64),
    Str(String),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub token: Token,
    pub line: u32,
    pub column: u32,
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    line: u32,
    column: u32,
}

/// The whole script's tokens.
pub fn tokens(script: &str) -> Result<Vec<Spanned>, Error> {
    let mut lexer = Lexer {
        text: script.as_bytes(),
        at: 0,
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    while let Some(t) = lexer.next()? {
        out.push(t);
    }
    Ok(out)
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.text.get(self.at + n).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        if b == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if b & 0xC0 != 0x80 {
            // Columns count characters, not UTF-8 continuation octets.
            self.column += 1;
        }
        Some(b)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::at(self.line, self.column, message)
    }

    fn next(&mut self) -> Result<Option<Spanned>, Error> {
        self.skip_space_and_comments()?;
        let (line, column) = (self.line, self.column);
        let Some(b) = self.peek() else {
            return Ok(None);
        };
        let token = match b {
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b',' | b';' => {
                self.bump();
                Token::Punct(char::from(b))
            }
            b'"' => Token::Str(self.quoted()?),
            b':' => {
                self.bump();
                let name = self.word();
                if name.is_empty() {
                    return Err(self.error("a tag needs a name after ':'"));
                }
                Token::Tag(name.to_ascii_lowercase())
            }
            b'0'..=b'9' => Token::Number(self.number()?),
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let word = self.word();
                if word.eq_ignore_ascii_case("text") && self.peek() == Some(b':') {
                    self.bump();
                    Token::Str(self.multiline()?)
                } else {
                    Token::Identifier(word.to_ascii_lowercase())
                }
            }
            _ => {
                let shown = String::from_utf8_lossy(
                    self.text.get(self.at..self.at + 1).unwrap_or_default(),
                )
                .into_owned();
                return Err(self.error(format!("unexpected character `{shown}`")));
            }
        };
        Ok(Some(Spanned {
            token,
            line,
            column,
        }))
    }

    fn skip_space_and_comments(&mut self) -> Result<(), Error> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(b) = self.bump() {
                        if b == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let (line, column) = (self.line, self.column);
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => return Err(Error::at(line, column, "comment not closed")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.bump();
        }
        String::from_utf8_lossy(self.text.get(start..self.at).unwrap_or_default()).into_owned()
    }

    fn number(&mut self) -> Result<u64, Error> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        let digits = std::str::from_utf8(self.text.get(start..self.at).unwrap_or_default())
            .unwrap_or_default();
        let n: u64 = digits.parse().map_err(|_| self.error("number too large"))?;
        let scale: u64 = match self.peek() {
            Some(b'K' | b'k') => 1 << 10,
            Some(b'M' | b'm') => 1 << 20,
            Some(b'G' | b'g') => 1 << 30,
            _ => 1,
        };
        if scale > 1 {
            self.bump();
        }
        n.checked_mul(scale)
            .ok_or_else(|| self.error("number too large"))
    }

    fn quoted(&mut self) -> Result<String, Error> {
        let (line, column) = (self.line, self.column);
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.bump() {
                Some(b'"') => break,
                // §2.4.2: a backslash quotes the next character.
                Some(b'\\') => match self.bump() {
                    Some(b) => out.push(b),
                    None => break,
                },
                Some(b) => out.push(b),
                None => return Err(Error::at(line, column, "string not closed")),
            }
        }
        String::from_utf8(out).map_err(|_| Error::at(line, column, "a string that is not UTF-8"))
    }

    /// `text:` to a line holding only `.`; `..` at a line start is `.`.
    fn multiline(&mut self) -> Result<String, Error> {
        let (line, column) = (self.line, self.column);
        // The rest of the `text:` line may hold white space or a comment.
        while let Some(b) = self.bump() {
            if b == b'\n' {
                break;
            }
        }
        let mut out = String::new();
        loop {
            let start = self.at;
            let mut ended = false;
            while let Some(b) = self.bump() {
                if b == b'\n' {
                    ended = true;
                    break;
                }
            }
            if !ended && self.at == start {
                return Err(Error::at(
                    line,
                    column,
                    "text: without its closing line '.'",
                ));
            }
            let raw = self.text.get(start..self.at).unwrap_or_default();
            let content = std::str::from_utf8(raw)
                .map_err(|_| Error::at(line, column, "a string that is not UTF-8"))?;
            let bare = content.trim_end_matches(['\r', '\n']);
            if bare == "." {
                return Ok(out);
            }
            let unstuffed = bare
                .strip_prefix('.')
                .filter(|r| r.starts_with('.'))
                .unwrap_or(bare);
            out.push_str(unstuffed);
            out.push_str("\r\n");
            if !ended {
                return Err(Error::at(
                    line,
                    column,
                    "text: without its closing line '.'",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(script: &str) -> Vec<Token> {
        tokens(script)
            .unwrap()
            .into_iter()
            .map(|s| s.token)
            .collect()
    }

    #[test]
    fn tokens_of_a_script() {
        let t = kinds(
            "require [\"fileinto\"]; # note\nif size :over 10K { /* x */ fileinto \"a\\\"b\"; }",
        );
        assert_eq!(
            t,
            vec![
                Token::Identifier("require".into()),
                Token::Punct('['),
                Token::Str("fileinto".into()),
                Token::Punct(']'),
                Token::Punct(';'),
                Token::Identifier("if".into()),
                Token::Identifier("size".into()),
                Token::Tag("over".into()),
                Token::Number(10 * 1024),
                Token::Punct('{'),
                Token::Identifier("fileinto".into()),
                Token::Str("a\"b".into()),
                Token::Punct(';'),
                Token::Punct('}'),
            ]
        );
        assert_eq!(
            kinds("text: # c\r\nline one\r\n..two\r\n.\r\n"),
            vec![Token::Str("line one\r\n.two\r\n".into())]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = tokens("keep;\n  \"open").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(tokens("/* open").is_err());
        assert!(tokens("99999999999999999999").is_err());
        assert!(tokens("text:\nno end").is_err());
        assert!(tokens("keep @").is_err());
    }
}
