//! Lookup tables in Postfix's `type:name` notation (Postfix's dict
//! layer), shared by the access restrictions and the content checks:
//!
//! - `hash:`, `btree:`, `lmdb:`, `dbm:`, `texthash:` — the *source* file
//!   that `postmap` would compile (`/etc/postfix/access`, not `.db`): the
//!   same `key value` lines, read directly, keys case-insensitive.
//! - `cidr:` — `network/prefix result` lines, first match wins.
//! - `regexp:`, `pcre:` — see [`regexp`].
//! - `inline:{ key=value, { key = text with spaces } }` and
//!   `static:result`.
//!
//! Tables are read when the configuration is loaded (start and SIGHUP);
//! a table that cannot be read refuses the configuration, as
//! `postfix check` would.

pub mod regexp;

use crate::config::net::Cidr;
use regexp::{Dialect, RegexpTable};
use std::collections::HashMap;
use std::net::IpAddr;

/// Files larger than this are refused (a table is configuration, not data).
const MAX_TABLE_BYTES: u64 = 64 << 20;

#[derive(Debug)]
pub enum Table {
    Exact(HashMap<String, String>),
    Cidr(Vec<(Cidr, String)>),
    Regexp(RegexpTable),
    Static(String),
}

impl Table {
    /// Loads `type:name`.
    pub fn load(spec: &str) -> Result<Table, String> {
        let spec = spec.trim();
        let Some((kind, name)) = spec.split_once(':') else {
            return Err(format!("`{spec}` is not type:name"));
        };
        match kind.to_ascii_lowercase().as_str() {
            "hash" | "btree" | "lmdb" | "dbm" | "texthash" | "cdb" => {
                Ok(Table::Exact(parse_exact(&read(name)?, name)?))
            }
            "cidr" => Ok(Table::Cidr(parse_cidr(&read(name)?, name)?)),
            "regexp" => Ok(Table::Regexp(RegexpTable::parse(
                &read(name)?,
                Dialect::Regexp,
                name,
            )?)),
            "pcre" => Ok(Table::Regexp(RegexpTable::parse(
                &read(name)?,
                Dialect::Pcre,
                name,
            )?)),
            "inline" => Ok(Table::Exact(parse_inline(name)?)),
            "static" => Ok(Table::Static(strip_braces(name).to_string())),
            other => Err(format!(
                "table type `{other}` is not supported (hash, btree, lmdb, texthash, cidr, regexp, pcre, inline, static)"
            )),
        }
    }

    /// The result for exactly `key` (exact tables compare without case;
    /// regexp tables match the whole string; cidr tables parse it as an
    /// address).
    pub fn get(&self, key: &str) -> Option<String> {
        match self {
            Table::Exact(map) => map.get(&key.to_ascii_lowercase()).cloned(),
            Table::Cidr(rules) => {
                let ip: IpAddr = key
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()?;
                rules
                    .iter()
                    .find(|(net, _)| net.contains(ip))
                    .map(|(_, r)| r.clone())
            }
            Table::Regexp(table) => table.lookup(key),
            Table::Static(value) => Some(value.clone()),
        }
    }

    /// Whether partial keys (parent domains, network prefixes, `user@`)
    /// are tried, as for Postfix's indexed tables; regexp and cidr tables
    /// see the whole string only.
    pub fn takes_partial_keys(&self) -> bool {
        matches!(self, Table::Exact(_))
    }
}

fn read(path: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read table {path}: {e}"))?;
    if meta.len() > MAX_TABLE_BYTES {
        return Err(format!(
            "table {path} is larger than {MAX_TABLE_BYTES} bytes"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read table {path}: {e}"))
}

fn parse_exact(text: &str, origin: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (lineno, line) in regexp::logical_lines(text) {
        let line = line.trim();
        let (key, value) = match line.find(char::is_whitespace) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => return Err(format!("{origin}:{lineno}: `{line}` has no value")),
        };
        // postmap keeps the first of duplicate keys (and warns).
        map.entry(key.to_ascii_lowercase())
            .or_insert_with(|| value.to_string());
    }
    Ok(map)
}

fn parse_cidr(text: &str, origin: &str) -> Result<Vec<(Cidr, String)>, String> {
    let mut rules = Vec::new();
    for (lineno, line) in regexp::logical_lines(text) {
        let line = line.trim();
        let Some(i) = line.find(char::is_whitespace) else {
            return Err(format!("{origin}:{lineno}: `{line}` has no result"));
        };
        let (negate, net) = match line[..i].strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, &line[..i]),
        };
        if negate {
            return Err(format!(
                "{origin}:{lineno}: negated cidr patterns are not supported"
            ));
        }
        let net: Cidr = net.parse().map_err(|e| format!("{origin}:{lineno}: {e}"))?;
        rules.push((net, line[i..].trim().to_string()));
    }
    Ok(rules)
}

fn strip_braces(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .map(str::trim)
        .unwrap_or(t)
}

/// `{ key=value, key2=value2, { key3 = text, with commas } }`.
fn parse_inline(text: &str) -> Result<HashMap<String, String>, String> {
    let body = strip_braces(text);
    let mut map = HashMap::new();
    let mut rest = body;
    while !rest.trim().is_empty() {
        let r = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if r.is_empty() {
            break;
        }
        let (item, next) = if let Some(inner) = r.strip_prefix('{') {
            let close = inner
                .find('}')
                .ok_or_else(|| format!("inline table `{text}`: unclosed {{"))?;
            (&inner[..close], &inner[close + 1..])
        } else {
            match r.find([',', ' ', '\t']) {
                Some(i) => (&r[..i], &r[i..]),
                None => (r, ""),
            }
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("inline table `{text}`: `{item}` is not key=value"))?;
        map.entry(key.trim().to_ascii_lowercase())
            .or_insert_with(|| value.trim().to_string());
        rest = next;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().expect("tempfile");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn postmap_source_files_are_read_directly() {
        let f = file(
            "# access\nspammer.example   REJECT go away\nOK.example OK\n  \nfriend@x.test\n    OK\n",
        );
        let t = Table::load(&format!("hash:{}", f.path().display())).expect("load");
        assert_eq!(t.get("SPAMMER.example").as_deref(), Some("REJECT go away"));
        assert_eq!(t.get("ok.example").as_deref(), Some("OK"));
        assert_eq!(t.get("friend@x.test").as_deref(), Some("OK"));
        assert_eq!(t.get("other"), None);
        assert!(t.takes_partial_keys());
    }

    #[test]
    fn cidr_inline_and_static() {
        let f = file("192.0.2.0/24 REJECT\n2001:db8::/32 OK\n10.1.2.3 DUNNO\n");
        let t = Table::load(&format!("cidr:{}", f.path().display())).expect("load");
        assert_eq!(t.get("192.0.2.77").as_deref(), Some("REJECT"));
        assert_eq!(t.get("2001:db8::5").as_deref(), Some("OK"));
        assert_eq!(t.get("10.1.2.3").as_deref(), Some("DUNNO"));
        assert_eq!(t.get("10.1.2.4"), None);
        assert_eq!(t.get("not-an-ip"), None);
        let t =
            Table::load("inline:{ a.test=OK, { b.test = REJECT no, really } }").expect("inline");
        assert_eq!(t.get("a.test").as_deref(), Some("OK"));
        assert_eq!(t.get("b.test").as_deref(), Some("REJECT no, really"));
        let t = Table::load("static:REJECT").expect("static");
        assert_eq!(t.get("anything").as_deref(), Some("REJECT"));
    }

    #[test]
    fn unreadable_or_unknown_tables_are_refused() {
        assert!(
            Table::load("hash:/nonexistent/access")
                .unwrap_err()
                .contains("cannot read")
        );
        assert!(
            Table::load("ldap:/etc/x")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Table::load("noseparator").is_err());
        let f = file("192.0.2.0/33 REJECT\n");
        assert!(
            Table::load(&format!("cidr:{}", f.path().display()))
                .unwrap_err()
                .contains(":1:")
        );
    }
}
