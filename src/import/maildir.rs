//! Maildir (and Maildir++) folders, as Dovecot, Courier and mbsync write
//! them: the messages of `cur/` and `new/` (never `tmp/`), flags from
//! the `:2,` info (`S` seen, `R` answered, `F` flagged, `T` deleted, `D`
//! draft, `a`–`z` keywords named by Dovecot's `dovecot-keywords`, also
//! on files Dovecot left in `new/`), the
//! arrival time from the file name's leading seconds (else its mtime).
//! Folders: the root is INBOX; `.A.B` (Maildir++) is `A/B`; a plain
//! subdirectory holding `cur`/`new` (mbsync's "Verbatim") is its path;
//! the usual other names of Sent, Trash and Junk are mapped to ours.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mailbox: String,
    pub path: PathBuf,
    pub flags: Vec<String>,
    pub internal_date: i64,
    /// (UIDVALIDITY, UID) from the folder's `dovecot-uidlist`, to keep.
    pub uid: Option<(u32, u32)>,
}

/// Folders below the root, at most this deep (a bound on odd trees).
const MAX_DEPTH: usize = 16;

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Our name for a folder another server named.
fn our_name(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "inbox" => "INBOX".into(),
        "sent items" | "sent messages" | "sent mail" => "Sent".into(),
        "deleted items" | "deleted messages" => "Trash".into(),
        "spam" | "junk e-mail" | "junk email" => "Junk".into(),
        _ => name.to_string(),
    }
}

/// Every message under `root`, folder by folder.
pub fn scan(root: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    if is_maildir(root) {
        messages(root, "INBOX", &mut out)?;
    }
    folders(root, root, "", 0, &mut out)?;
    Ok(out)
}

fn folders(
    root: &Path,
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Entry>,
) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    for child in children {
        let Some(name) = child.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if matches!(name.as_str(), "cur" | "new" | "tmp") {
            continue;
        }
        if let Some(plus) = name.strip_prefix('.') {
            // Maildir++: only at the root, dots are the hierarchy.
            if dir == root && !plus.is_empty() && is_maildir(&child) {
                // Only a top-level folder is a special one ("Sent Items"
                // under Archive stays what it is), as for plain folders.
                let mailbox = match plus.split_once('.') {
                    Some((top, rest)) => format!("{}/{}", our_name(top), rest.replace('.', "/")),
                    None => our_name(plus),
                };
                messages(&child, &mailbox, out)?;
            }
            continue;
        }
        let path = if prefix.is_empty() {
            our_name(&name)
        } else {
            format!("{prefix}/{name}")
        };
        if is_maildir(&child) {
            messages(&child, &path, out)?;
        }
        folders(root, &child, &path, depth + 1, out)?;
    }
    Ok(())
}

/// Dovecot's `dovecot-keywords`: `N name` lines, `N` for the letter `a`+N.
fn keywords(dir: &Path) -> Vec<(char, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (n, name) = l.split_once(' ')?;
            let n: u8 = n.parse().ok()?;
            let letter = char::from(b'a'.checked_add(n).filter(|c| *c <= b'z')?);
            Some((letter, name.trim().to_string()))
        })
        .collect()
}

/// Dovecot's `dovecot-uidlist` (version 3: `3 V<uidvalidity> N<next>
/// ...` then `<uid> [fields] :<base name>`; version 1: `1 <uidvalidity>
/// <next>` then `<uid> <base name>`): UIDVALIDITY and each base name's UID.
fn uidlist(dir: &Path) -> Option<(u32, std::collections::HashMap<String, u32>)> {
    let text = std::fs::read_to_string(dir.join("dovecot-uidlist")).ok()?;
    let mut lines = text.lines();
    let mut header = lines.next()?.split_whitespace();
    let validity: u32 = match header.next()? {
        "3" => header.find_map(|f| f.strip_prefix('V'))?.parse().ok()?,
        "1" => header.next()?.parse().ok()?,
        _ => return None,
    };
    let mut uids = std::collections::HashMap::new();
    for line in lines {
        let Some((uid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        let name = match rest.split_once(':') {
            Some((_, name)) => name,
            None => rest,
        };
        uids.insert(name.trim().to_string(), uid);
    }
    Some((validity, uids))
}

fn messages(dir: &Path, mailbox: &str, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let keywords = keywords(dir);
    let uidlist = uidlist(dir);
    let first = out.len();
    for sub in ["cur", "new"] {
        let Ok(read) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // Dovecot keeps flags on files still in new/ too.
            let flags = flags_of(&name, &keywords);
            let internal_date = name
                .split('.')
                .next()
                .and_then(|t| t.parse::<i64>().ok())
                .filter(|t| *t > 0)
                .or_else(|| {
                    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
                    Some(
                        modified
                            .duration_since(std::time::UNIX_EPOCH)
                            .ok()?
                            .as_secs() as i64,
                    )
                })
                .unwrap_or(0);
            let base = name.split(':').next().unwrap_or(&name);
            let uid = uidlist
                .as_ref()
                .and_then(|(validity, uids)| Some((*validity, *uids.get(base)?)));
            out.push(Entry {
                mailbox: mailbox.to_string(),
                path,
                flags,
                internal_date,
                uid,
            });
        }
    }
    // Kept UIDs must be stored in ascending order; files Dovecot had not
    // numbered yet come after them.
    if let Some(folder) = out.get_mut(first..) {
        folder.sort_by_key(|e| e.uid.map_or(u32::MAX, |(_, uid)| uid));
    }
    Ok(())
}

/// The `:2,` info's letters.
fn flags_of(name: &str, keywords: &[(char, String)]) -> Vec<String> {
    let Some((_, info)) = name.rsplit_once(":2,") else {
        return Vec::new();
    };
    let mut flags = Vec::new();
    for c in info.chars() {
        let flag = match c {
            'S' => Some("\\Seen".to_string()),
            'R' => Some("\\Answered".to_string()),
            'F' => Some("\\Flagged".to_string()),
            'T' => Some("\\Deleted".to_string()),
            'D' => Some("\\Draft".to_string()),
            'a'..='z' => keywords
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, k)| k.clone()),
            _ => None,
        };
        if let Some(f) = flag
            && !flags.contains(&f)
        {
            flags.push(f);
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_flags_and_dates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "cur",
            "new",
            "tmp",
            ".Lists.dev/cur",
            "Sent Items/cur",
            "Archive/2024/cur",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("dovecot-keywords"), "0 $Work\n1 NonJunk\n").unwrap();
        std::fs::write(
            root.join("cur/1700000000.M1.host:2,FSa"),
            "Subject: a\r\n\r\nx\r\n",
        )
        .unwrap();
        std::fs::write(
            root.join("new/1700000001.M2.host"),
            "Subject: b\r\n\r\nx\r\n",
        )
        .unwrap();
        std::fs::write(root.join("tmp/1700000002.M3.host"), "partial").unwrap();
        std::fs::write(
            root.join(".Lists.dev/cur/1700000003.M4.host:2,R"),
            "Subject: c\r\n\r\nx\r\n",
        )
        .unwrap();
        std::fs::write(
            root.join("Sent Items/cur/1700000004.M5.host:2,S"),
            "Subject: d\r\n\r\nx\r\n",
        )
        .unwrap();
        std::fs::write(
            root.join("Archive/2024/cur/1700000005.M6.host:2,"),
            "Subject: e\r\n\r\nx\r\n",
        )
        .unwrap();
        let got = scan(root).unwrap();
        let summary: Vec<(String, Vec<String>, i64)> = got
            .iter()
            .map(|e| (e.mailbox.clone(), e.flags.clone(), e.internal_date))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                (
                    "INBOX".into(),
                    s(&["\\Flagged", "\\Seen", "$Work"]),
                    1_700_000_000
                ),
                ("INBOX".into(), vec![], 1_700_000_001),
                ("Lists/dev".into(), s(&["\\Answered"]), 1_700_000_003),
                ("Archive/2024".into(), vec![], 1_700_000_005),
                ("Sent".into(), s(&["\\Seen"]), 1_700_000_004),
            ]
        );
    }
}
