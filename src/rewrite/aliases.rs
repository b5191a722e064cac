//! aliases(5) files: `name: target, target`, continuation lines start with
//! white space, `#` starts a comment. Targets are addresses; pipes, files
//! and `:include:` are not supported (they would run code or write files as
//! the daemon) and are reported as problems.

use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aliases {
    map: HashMap<String, Vec<String>>,
}

impl Aliases {
    /// Reads a file; a missing file is an empty table. Returns the table
    /// and the problems found (with line numbers) — bad lines are skipped.
    pub fn load(path: &Path) -> std::io::Result<(Aliases, Vec<String>)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Aliases::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Aliases::default(), vec![])),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> (Aliases, Vec<String>) {
        let mut map = HashMap::new();
        let mut problems = Vec::new();
        for (number, entry) in logical_lines(text) {
            let Some((name, targets)) = entry.split_once(':') else {
                problems.push(format!("line {number}: missing ':'"));
                continue;
            };
            let name = name.trim().trim_matches('"').to_lowercase();
            if name.is_empty() || name.contains(char::is_whitespace) {
                problems.push(format!("line {number}: bad alias name"));
                continue;
            }
            let mut list = Vec::new();
            for target in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                // aliases(5) allows quotes around a target (`"|/usr/bin/procmail"`).
                let target = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    Some(inner) => inner.trim(),
                    None => target,
                };
                if target.starts_with('|')
                    || target.starts_with('/')
                    || target.starts_with(":include:")
                {
                    problems.push(format!(
                        "line {number}: {name}: `{target}` is not supported (only addresses)"
                    ));
                    continue;
                }
                list.push(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                );
            }
            if list.is_empty() {
                problems.push(format!("line {number}: {name}: no usable targets"));
                continue;
            }
            if map.insert(name.clone(), list).is_some() {
                problems.push(format!("line {number}: duplicate alias {name}"));
            }
        }
        (Aliases { map }, problems)
    }

    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.map.get(&name.to_lowercase()).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Joins continuation lines; yields (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some((_, last)) = out.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
            continue;
        }
        out.push((i + 1, line.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_format() {
        let text = "# comment\npostmaster: root\nStaff: alice,\n  bob, carol@example.org\nbad line\npipe: |/bin/x, dave\nquoted: \"|/usr/bin/procmail\"\n";
        let (aliases, problems) = Aliases::parse(text);
        assert_eq!(aliases.get("postmaster"), Some(&["root".to_string()][..]));
        assert_eq!(aliases.get("staff").unwrap().len(), 3);
        assert_eq!(aliases.get("pipe"), Some(&["dave".to_string()][..]));
        assert_eq!(aliases.get("quoted"), None);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`|/usr/bin/procmail` is not supported")),
            "{problems:?}"
        );
    }
}
