//! IMAP command parser (`merpati::imap::proto::parse_command`): one whole
//! command as `CommandReader` delivers it (literals inline, final CRLF
//! removed).
//!
//! Checked: no panic; the `BAD` reason cannot carry a line break into the
//! response; the tag the parser reports is the one `tag_of` (used for
//! framing errors) sees; sequence sets print back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::imap::proto::reader::tag_of;
use merpati::imap::proto::{CommandKind, FetchAtt, SearchKey, SeqSet, parse_command};

fn check_set(set: &SeqSet) {
    if set.0.is_empty() {
        return; // SEARCHRES `$`
    }
    let text = set.to_string();
    assert_eq!(SeqSet::parse(&text).as_ref(), Some(set), "{text}");
    for &n in &[0, 1, 2, u32::MAX] {
        let _ = set.contains(n, 7);
    }
}

fn check_key(key: &SearchKey, depth: usize) {
    assert!(depth < 10_000);
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| check_key(k, depth + 1)),
        SearchKey::Or(a, b) => {
            check_key(a, depth + 1);
            check_key(b, depth + 1);
        }
        SearchKey::Not(k) => check_key(k, depth + 1),
        SearchKey::Uid(set) | SearchKey::Seq(set) => check_set(set),
        _ => {}
    }
}

/// The tag the parser accepted is what starts the input, and framing
/// errors (which only see raw bytes) would answer with the same tag.
fn check_tag(input: &[u8], tag: &str) {
    assert!(!tag.is_empty());
    assert!(input.starts_with(tag.as_bytes()));
    if input.get(tag.len()) == Some(&b' ') && tag.len() <= 64 {
        assert_eq!(tag_of(input).as_deref(), Some(tag));
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_command(data) {
        Ok(cmd) => {
            check_tag(data, &cmd.tag);
            let _ = format!("{cmd:?}");
            match &cmd.kind {
                CommandKind::Fetch { set, items, .. } => {
                    check_set(set);
                    for item in items {
                        if let FetchAtt::Section { section, .. } = item {
                            let _ = section.spec();
                        }
                    }
                }
                CommandKind::Store { set, .. } | CommandKind::Copy { set, .. } => check_set(set),
                CommandKind::Expunge { uids: Some(set) } => check_set(set),
                CommandKind::Search { key, .. } => check_key(key, 0),
                _ => {}
            }
        }
        Err(e) => {
            assert!(
                !e.reason.contains(['\r', '\n']),
                "line break in BAD reason {:?}",
                e.reason
            );
            if let Some(tag) = &e.tag {
                check_tag(data, tag);
            }
        }
    }
});
