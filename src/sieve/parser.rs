//! Sieve's grammar (RFC 5228 §8.2) into a syntax tree: commands with
//! their arguments, tests and blocks. What the names mean is checked by
//! `compile`; this only knows the shape. Nesting is bounded, so a script
//! of ten thousand `(` cannot exhaust the stack.

use super::Error;
use super::lexer::{Spanned, Token};

/// Blocks and test lists nested deeper than this are refused.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Strings(Vec<String>),
    Number(u64),
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub name: String,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
    pub block: Option<Vec<Command>>,
    pub line: u32,
    pub column: u32,
}

struct Parser {
    tokens: Vec<Spanned>,
    at: usize,
}

pub fn parse(tokens: Vec<Spanned>) -> Result<Vec<Command>, Error> {
    let mut p = Parser { tokens, at: 0 };
    let commands = p.commands(0)?;
    if let Some(t) = p.tokens.get(p.at) {
        return Err(Error::at(t.line, t.column, "unexpected '}'"));
    }
    Ok(commands)
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.at)
    }

    fn is_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Punct(p), .. }) if *p == c)
    }

    /// Where the next token is (or the end of the last one).
    fn position(&self) -> (u32, u32) {
        self.peek()
            .or(self.tokens.last())
            .map_or((1, 1), |t| (t.line, t.column))
    }

    fn error(&self, message: impl Into<String>) -> Error {
        let (line, column) = self.position();
        Error::at(line, column, message)
    }

    fn expect(&mut self, c: char) -> Result<(), Error> {
        if self.is_punct(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}'")))
        }
    }

    fn commands(&mut self, depth: usize) -> Result<Vec<Command>, Error> {
        let mut out = Vec::new();
        while let Some(t) = self.peek() {
            match &t.token {
                Token::Identifier(_) => out.push(self.command(depth)?),
                Token::Punct('}') if depth > 0 => break,
                _ => return Err(self.error("expected a command")),
            }
        }
        Ok(out)
    }

    fn command(&mut self, depth: usize) -> Result<Command, Error> {
        let Some(Spanned {
            token: Token::Identifier(name),
            line,
            column,
        }) = self.peek().cloned()
        else {
            return Err(self.error("expected a command"));
        };
        self.at += 1;
        let (args, tests) = self.arguments(depth)?;
        let block = if self.is_punct('{') {
            if depth >= MAX_DEPTH {
                return Err(self.error("blocks nested too deeply"));
            }
            self.at += 1;
            let inner = self.commands(depth + 1)?;
            self.expect('}')?;
            Some(inner)
        } else {
            self.expect(';')?;
            None
        };
        Ok(Command {
            name,
            args,
            tests,
            block,
            line,
            column,
        })
    }

    /// Arguments, then a test or a test list.
    fn arguments(&mut self, depth: usize) -> Result<(Vec<Arg>, Vec<Test>), Error> {
        let mut args = Vec::new();
        while let Some(t) = self.peek().cloned() {
            match t.token {
                Token::Tag(tag) => {
                    self.at += 1;
                    args.push(Arg::Tag(tag));
                }
                Token::Number(n) => {
                    self.at += 1;
                    args.push(Arg::Number(n));
                }
                Token::Str(s) => {
                    self.at += 1;
                    args.push(Arg::Strings(vec![s]));
                }
                Token::Punct('[') => args.push(Arg::Strings(self.string_list()?)),
                _ => break,
            }
        }
        let tests = match self.peek().map(|t| &t.token) {
            Some(Token::Identifier(_)) => vec![self.test(depth + 1)?],
            Some(Token::Punct('(')) => self.test_list(depth + 1)?,
            _ => Vec::new(),
        };
        Ok((args, tests))
    }

    fn string_list(&mut self) -> Result<Vec<String>, Error> {
        self.expect('[')?;
        let mut out = Vec::new();
        loop {
            match self.peek().map(|t| t.token.clone()) {
                Some(Token::Str(s)) => {
                    self.at += 1;
                    out.push(s);
                }
                _ => return Err(self.error("expected a string in the list")),
            }
            if self.is_punct(',') {
                self.at += 1;
                continue;
            }
            self.expect(']')?;
            return Ok(out);
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, Error> {
        if depth >= MAX_DEPTH {
            return Err(self.error("tests nested too deeply"));
        }
        let Some(Spanned {
            token: Token::Identifier(name),
            line,
            column,
        }) = self.peek().cloned()
        else {
            return Err(self.error("expected a test"));
        };
        self.at += 1;
        let (args, tests) = self.arguments(depth)?;
        Ok(Test {
            name,
            args,
            tests,
            line,
            column,
        })
    }

    fn test_list(&mut self, depth: usize) -> Result<Vec<Test>, Error> {
        if depth >= MAX_DEPTH {
            return Err(self.error("tests nested too deeply"));
        }
        self.expect('(')?;
        let mut out = vec![self.test(depth)?];
        while self.is_punct(',') {
            self.at += 1;
            out.push(self.test(depth)?);
        }
        self.expect(')')?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sieve::lexer::tokens;

    fn tree(script: &str) -> Result<Vec<Command>, Error> {
        parse(tokens(script)?)
    }

    #[test]
    fn shapes() {
        let t = tree("if anyof (header :contains \"subject\" [\"a\", \"b\"], size :over 1M) { discard; } else { keep; }").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "if");
        assert_eq!(t[0].tests[0].name, "anyof");
        assert_eq!(t[0].tests[0].tests.len(), 2);
        assert_eq!(
            t[0].tests[0].tests[0].args,
            vec![
                Arg::Tag("contains".into()),
                Arg::Strings(vec!["subject".into()]),
                Arg::Strings(vec!["a".into(), "b".into()])
            ]
        );
        assert_eq!(t[1].name, "else");
    }

    #[test]
    fn bad_shapes_are_errors_with_positions() {
        let e = tree("keep").unwrap_err();
        assert!(e.message.contains("';'"), "{e}");
        let e = tree("if true {\n  keep;\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(tree("}").is_err());
        assert!(tree("fileinto [\"a\",];").is_err());
        let deep = format!("if {}true{} {{ keep; }}", "not ".repeat(100), "");
        assert!(tree(&deep).is_err());
        let nested = format!("{}{}", "if true {".repeat(100), "}".repeat(100));
        assert!(tree(&nested).is_err());
    }
}
