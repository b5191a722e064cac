//! A user's own allow and block lists (`merpati spam allow|block`):
//! addresses (`news@shop.example`) and domains (`shop.example`, which also
//! covers its subdomains). They beat the score: a blocked sender is spam,
//! an allowed one is not — but only when SPF or DKIM vouch for the
//! sender's domain, since a From: is easy to forge (SpamAssassin's
//! `welcomelist_auth`).

use crate::mailauth::Results;

/// Entries per list, at most.
pub const MAX_ENTRIES: usize = 1000;
const MAX_ENTRY: usize = 255;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists {
    pub allow: Vec<String>,
    pub block: Vec<String>,
}

/// Which list an entry goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Allow,
    Block,
}

impl Lists {
    /// `allow x` / `block y` lines; anything else is skipped.
    pub fn decode(bytes: &[u8]) -> Lists {
        let mut lists = Lists::default();
        for line in String::from_utf8_lossy(bytes).lines() {
            match line.split_once(' ') {
                Some(("allow", e)) => lists.allow.push(e.to_string()),
                Some(("block", e)) => lists.block.push(e.to_string()),
                _ => {}
            }
        }
        lists
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for (word, list) in [("allow", &self.allow), ("block", &self.block)] {
            for e in list {
                out.push_str(word);
                out.push(' ');
                out.push_str(e);
                out.push('\n');
            }
        }
        out.into_bytes()
    }

    /// Adds `entry` (checked and lower-cased) to one list, taking it off
    /// the other.
    pub fn add(&mut self, which: Which, entry: &str) -> Result<(), String> {
        let entry = entry.trim().trim_start_matches('@').to_ascii_lowercase();
        let valid = !entry.is_empty()
            && entry.len() <= MAX_ENTRY
            && entry.contains('.')
            && !entry.contains(char::is_whitespace)
            && entry.matches('@').count() <= 1;
        if !valid {
            return Err(format!("`{entry}` is not an address or a domain"));
        }
        let (list, other) = match which {
            Which::Allow => (&mut self.allow, &mut self.block),
            Which::Block => (&mut self.block, &mut self.allow),
        };
        other.retain(|e| *e != entry);
        if !list.contains(&entry) {
            if list.len() >= MAX_ENTRIES {
                return Err(format!("the list is full ({MAX_ENTRIES} entries)"));
            }
            list.push(entry);
        }
        Ok(())
    }

    /// Removes `entry` from both lists; whether it was on one.
    pub fn remove(&mut self, entry: &str) -> bool {
        let entry = entry.trim().trim_start_matches('@').to_ascii_lowercase();
        let before = self.allow.len() + self.block.len();
        self.allow.retain(|e| *e != entry);
        self.block.retain(|e| *e != entry);
        before != self.allow.len() + self.block.len()
    }

    /// `Some("USER_IN_BLOCKLIST")` or `Some("USER_IN_ALLOWLIST")` when an
    /// entry covers the envelope sender or the From: address.
    pub fn verdict(
        &self,
        sender: &str,
        from: Option<&str>,
        auth: Option<&Results>,
    ) -> Option<&'static str> {
        let candidates: Vec<&str> = [Some(sender), from]
            .into_iter()
            .flatten()
            .filter(|a| a.contains('@'))
            .collect();
        if candidates
            .iter()
            .any(|a| self.block.iter().any(|e| covers(e, a)))
        {
            return Some("USER_IN_BLOCKLIST");
        }
        let vouched = |a: &str| {
            let domain = a.rsplit_once('@').map_or("", |(_, d)| d);
            auth.is_some_and(|r| r.vouches_for(domain))
        };
        candidates
            .iter()
            .any(|a| vouched(a) && self.allow.iter().any(|e| covers(e, a)))
            .then_some("USER_IN_ALLOWLIST")
    }
}

/// Whether list entry `entry` covers `address`.
fn covers(entry: &str, address: &str) -> bool {
    if entry.contains('@') {
        return entry.eq_ignore_ascii_case(address);
    }
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    domain.eq_ignore_ascii_case(entry)
        || domain.to_ascii_lowercase().ends_with(&format!(".{entry}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_addresses_and_domains_and_allow_needs_authentication() {
        let mut l = Lists::default();
        l.add(Which::Block, "spam.example").unwrap();
        l.add(Which::Allow, "@News@Shop.example").unwrap();
        assert!(l.add(Which::Allow, "not an address").is_err());
        assert_eq!(
            l.verdict("x@mail.spam.example", None, None),
            Some("USER_IN_BLOCKLIST")
        );
        assert_eq!(l.verdict("news@shop.example", None, None), None);
        let spf = Results {
            spf: "pass",
            spf_domain: "shop.example".into(),
            ..Results::default()
        };
        assert_eq!(
            l.verdict("news@shop.example", None, Some(&spf)),
            Some("USER_IN_ALLOWLIST")
        );
        assert_eq!(Lists::decode(&l.encode()), l);
        // Moving an entry to the other list.
        l.add(Which::Allow, "spam.example").unwrap();
        assert!(l.block.is_empty());
        assert!(l.remove("spam.example"));
    }
}
