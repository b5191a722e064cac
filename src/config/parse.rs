//! Reading a config file so that every problem is reported at once, each
//! with the key it concerns and where in the file it is (`line:col`).
//!
//! The text is read twice: by `toml_edit`, which keeps the position of
//! every key and value, and by `toml` into values. Every setting is then
//! deserialised on its own (the rest left at its default), so one badly
//! typed key names itself and hides no other.

use super::{Config, Problem};
use std::ops::Range;
use toml_edit::TableLike;

/// Tables whose keys are data (addresses, domains), not settings.
pub const FREE_FORM_TABLES: &[&str] = &["virtual_alias.map", "relay.transports"];

/// Positions of keys in one file's text, for problems found later.
pub struct Positions {
    text: String,
    keys: Vec<(String, Range<usize>)>,
}

impl Positions {
    /// `line:col` (both from 1) of a dotted key path, if the file sets it.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let (_, span) = self.keys.iter().find(|(p, _)| p == path)?;
        Some(line_col(&self.text, span.start))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn problem(key: &str, message: impl Into<String>, at: Option<(usize, usize)>) -> Problem {
    Problem {
        at,
        ..Problem::new(key, message)
    }
}

/// Every leaf setting of a parsed document: its dotted path, the span of
/// its key, and the span of its value.
fn leaves(
    prefix: &str,
    table: &dyn TableLike,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let key_span = key.span().unwrap_or(0..0);
        match item.as_table_like() {
            // An empty table still names a key (`[nope]` must be reported).
            Some(sub) if !FREE_FORM_TABLES.contains(&path.as_str()) && !sub.is_empty() => {
                leaves(&path, sub, out)
            }
            _ => {
                let value_span = item.span().unwrap_or_else(|| key_span.clone());
                out.push((path, key_span, value_span));
            }
        }
    }
}

/// The value at a dotted path of a `toml` table.
fn value_at<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// A table holding only `value` at `path`.
fn only(path: &str, value: toml::Value) -> toml::Table {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return toml::Table::new();
    };
    let mut table = toml::Table::new();
    table.insert(last.to_string(), value);
    while let Some(part) = parts.pop() {
        let mut outer = toml::Table::new();
        outer.insert(part.to_string(), toml::Value::Table(table));
        table = outer;
    }
    table
}

/// True when the defaults have a key at `path` (or `path` is inside a
/// free-form table).
fn known(defaults: &toml::Table, path: &str) -> bool {
    value_at(defaults, path).is_some()
}

/// Parses config text; on failure returns every problem, located.
pub fn parse(text: &str) -> Result<(Config, Positions), Vec<Problem>> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start));
        vec![problem("(syntax)", e.message().trim(), at)]
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e.span().map(|s| line_col(text, s.start));
        vec![problem("(syntax)", e.message().trim(), at)]
    })?;
    let mut found = Vec::new();
    leaves("", doc.as_table(), &mut found);
    let positions = Positions {
        text: text.to_string(),
        keys: found
            .iter()
            .map(|(p, k, _)| (p.clone(), k.clone()))
            .collect(),
    };
    let defaults = match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    let mut problems = Vec::new();
    for (path, key_span, value_span) in &found {
        if !known(&defaults, path) {
            let at = Some(line_col(text, key_span.start));
            problems.push(problem(path, "unknown key", at));
            continue;
        }
        let Some(value) = value_at(&table, path) else {
            continue;
        };
        if let Err(e) = only(path, value.clone()).try_into::<Config>() {
            let at = Some(line_col(text, value_span.start));
            problems.push(problem(path, e.message().trim(), at));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Each key was fine alone; together they still go through serde once.
    let config = table
        .try_into::<Config>()
        .map_err(|e| vec![problem("(file)", e.message().trim(), None)])?;
    Ok((config, positions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
    }

    #[test]
    fn every_bad_key_is_named_and_located() {
        let text = "nope = 1\n[smtp]\nmax_recipients = \"lots\"\nmax_errors = \"many\"\nwhat = 2\n";
        let problems = parse(text).err().unwrap_or_default();
        let keys: Vec<(&str, Option<(usize, usize)>)> =
            problems.iter().map(|p| (p.key.as_str(), p.at)).collect();
        assert_eq!(
            keys,
            [
                ("nope", Some((1, 1))),
                ("smtp.max_recipients", Some((3, 18))),
                ("smtp.max_errors", Some((4, 14))),
                ("smtp.what", Some((5, 1))),
            ],
            "{problems:?}"
        );
        assert!(problems[1].message.contains("usize"), "{problems:?}");
    }

    #[test]
    fn an_empty_unknown_table_is_reported() {
        let problems = parse("[nope]\n[smtp]\n").err().unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "nope");
        assert_eq!(problems[0].at, Some((1, 2)));
        assert!(parse("[virtual_alias]\n[log]\n").is_ok());
    }

    #[test]
    fn syntax_errors_are_located() {
        let problems = parse("[smtp]\nmax_errors = = 3\n")
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "(syntax)");
        assert_eq!(problems[0].at.map(|(l, _)| l), Some(2), "{problems:?}");
    }

    #[test]
    fn free_form_tables_take_any_key() {
        let text = "[virtual_alias.map]\n\"a@x.org\" = [\"b@y.org\"]\n[relay.transports]\n\"x.org\" = \"[10.0.0.1]:2525\"\n";
        let (config, positions) = parse(text).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(config.virtual_alias.map.len(), 1);
        assert_eq!(
            positions.locate("relay.transports").map(|(l, _)| l),
            Some(3)
        );
    }
}
