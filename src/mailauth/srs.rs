//! The Sender Rewriting Scheme (Shevek's SRS, as postsrsd and Exim do it):
//! a message we forward to another domain leaves with an envelope sender
//! in our domain, so SPF passes at the next hop, and a bounce to that
//! address finds its way back to the original sender.
//!
//! - `SRS0=HHHH=TT=example.org=alice@srs.domain`: HHHH is a keyed hash
//!   (HMAC-SHA256 with a secret in `<data_dir>/srs.secret`, 4 base64
//!   characters), TT the day (base32, 10 bits) so old addresses expire;
//! - an address that is already SRS0 of another forwarder becomes
//!   `SRS1=HHHH=forwarder==HHHH=TT=example.org=alice@srs.domain`, so a
//!   bounce goes to the first forwarder directly.
//!
//! Pure functions of (address, secret, day); the caller decides when.

use crate::auth::base64_encode;
use ring::hmac;
use std::path::Path;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The timestamp wraps after 1024 days.
const DAYS: u64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not verify")]
    BadHash,
    #[error("SRS address has expired")]
    Expired,
}

pub struct Srs {
    key: hmac::Key,
}

impl Srs {
    pub fn new(secret: &[u8]) -> Self {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The secret of `<data_dir>/srs.secret`, made (32 random bytes, 0600)
    /// when missing. Changing it invalidates every SRS address in flight.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("srs.secret");
        match std::fs::read(&path) {
            Ok(secret) if secret.len() >= 16 => return Ok(Srs::new(&secret)),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is shorter than 16 bytes", path.display()),
                ));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| std::io::Error::other("no random numbers"))?;
        crate::perms::write_private_file(&path, &secret, 0o600)?;
        Ok(Srs::new(&secret))
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(part.to_ascii_lowercase().as_bytes());
            ctx.update(b"\0");
        }
        let tag = ctx.sign();
        base64_encode(tag.as_ref()).chars().take(4).collect()
    }

    /// The SRS form of `sender` (`local@domain`) in `srs_domain`, on day
    /// `day` (days since 1970).
    pub fn forward(&self, sender: &str, srs_domain: &str, day: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if domain.eq_ignore_ascii_case(srs_domain) {
            return sender.to_string();
        }
        if let Some(rest) = strip_tag(local, "SRS0") {
            // SRS0 of `domain`, forwarded again: SRS1 pointing at it.
            let hash = self.hash(&[domain, rest]);
            return format!("SRS1={hash}={domain}=={rest}@{srs_domain}");
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            // Keep the first forwarder; only our hash is new.
            if let Some((old_hash_and_first, srs0)) = rest.split_once("==")
                && let Some((_, first)) = old_hash_and_first.split_once('=')
            {
                let hash = self.hash(&[first, srs0]);
                return format!("SRS1={hash}={first}=={srs0}@{srs_domain}");
            }
        }
        let tt = timestamp(day);
        let hash = self.hash(&[&tt, domain, local]);
        format!("SRS0={hash}={tt}={domain}={local}@{srs_domain}")
    }

    /// The address an SRS local part stands for. `max_age_days` bounds how
    /// old an SRS0 address may be (SRS1 leads to another forwarder, which
    /// checks its own timestamp).
    pub fn reverse(&self, local: &str, day: u64, max_age_days: u64) -> Result<String, SrsError> {
        if let Some(rest) = strip_tag(local, "SRS0") {
            let mut parts = rest.splitn(4, '=');
            let (Some(hash), Some(tt), Some(domain), Some(user)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SrsError::Malformed);
            };
            if domain.is_empty() || user.is_empty() {
                return Err(SrsError::Malformed);
            }
            if !hash.eq_ignore_ascii_case(&self.hash(&[tt, domain, user])) {
                return Err(SrsError::BadHash);
            }
            let then = decode_timestamp(tt).ok_or(SrsError::Malformed)?;
            let age = (day % DAYS + DAYS - then) % DAYS;
            if age > max_age_days {
                return Err(SrsError::Expired);
            }
            return Ok(format!("{user}@{domain}"));
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            let (head, srs0) = rest.split_once("==").ok_or(SrsError::Malformed)?;
            let (hash, first) = head.split_once('=').ok_or(SrsError::Malformed)?;
            if first.is_empty() || srs0.is_empty() {
                return Err(SrsError::Malformed);
            }
            if !hash.eq_ignore_ascii_case(&self.hash(&[first, srs0])) {
                return Err(SrsError::BadHash);
            }
            return Ok(format!("SRS0={srs0}@{first}"));
        }
        Err(SrsError::NotSrs)
    }
}

/// Whether a local part is an SRS address (any case of the tag).
pub fn is_srs(local: &str) -> bool {
    strip_tag(local, "SRS0").is_some() || strip_tag(local, "SRS1").is_some()
}

/// `SRS0=rest` → `rest` (the tag in any case; `-` and `+` are accepted as
/// separators too, as other implementations write them).
fn strip_tag<'a>(local: &'a str, tag: &str) -> Option<&'a str> {
    let head = local.get(..tag.len())?;
    if !head.eq_ignore_ascii_case(tag) {
        return None;
    }
    let rest = local.get(tag.len()..)?;
    rest.strip_prefix(['=', '-', '+'])
}

fn timestamp(day: u64) -> String {
    let t = day % DAYS;
    let hi = BASE32.get((t >> 5) as usize).copied().unwrap_or(b'A');
    let lo = BASE32.get((t & 31) as usize).copied().unwrap_or(b'A');
    String::from_utf8_lossy(&[hi, lo]).into_owned()
}

fn decode_timestamp(tt: &str) -> Option<u64> {
    let value = |c: u8| {
        BASE32
            .iter()
            .position(|&b| b == c.to_ascii_uppercase())
            .map(|p| p as u64)
    };
    match tt.as_bytes() {
        [hi, lo] => Some(value(*hi)? << 5 | value(*lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 20_789;

    #[test]
    fn srs0_round_trip_and_checks() {
        let srs = Srs::new(b"0123456789abcdef0123456789abcdef");
        let fwd = srs.forward("alice@example.org", "fwd.test", DAY);
        assert!(fwd.starts_with("SRS0="), "{fwd}");
        assert!(fwd.ends_with("=example.org=alice@fwd.test"), "{fwd}");
        let local = fwd.split('@').next().unwrap();
        assert_eq!(srs.reverse(local, DAY, 21).unwrap(), "alice@example.org");
        // Case changes on the way (some MTAs lower-case) still verify.
        assert_eq!(
            srs.reverse(&local.to_lowercase(), DAY + 3, 21).unwrap(),
            "alice@example.org"
        );
        assert_eq!(srs.reverse(local, DAY + 22, 21), Err(SrsError::Expired));
        let forged = local.replacen("=example.org=", "=evil.test=", 1);
        assert_eq!(srs.reverse(&forged, DAY, 21), Err(SrsError::BadHash));
        let other = Srs::new(b"another secret, another forwarder");
        assert_eq!(other.reverse(local, DAY, 21), Err(SrsError::BadHash));
        for bad in [
            "SRS0=",
            "SRS0=abcd=AA=",
            "SRS0=abcd",
            "SRS1=x",
            "SRS1=h=f==",
        ] {
            assert!(srs.reverse(bad, DAY, 21).is_err(), "{bad}");
        }
        assert_eq!(srs.reverse("alice", DAY, 21), Err(SrsError::NotSrs));
        // Our own domain is not rewritten.
        assert_eq!(srs.forward("bob@fwd.test", "fwd.test", DAY), "bob@fwd.test");
    }

    #[test]
    fn timestamps_wrap_at_1024_days() {
        for day in [0, 1, 31, 32, 1023, 1024, DAY] {
            assert_eq!(decode_timestamp(&timestamp(day)), Some(day % 1024));
        }
        let srs = Srs::new(b"0123456789abcdef0123456789abcdef");
        let fwd = srs.forward("a@b.test", "f.test", 1023);
        let local = fwd.split('@').next().unwrap();
        assert_eq!(srs.reverse(local, 1025, 21).unwrap(), "a@b.test");
    }

    #[test]
    fn srs1_points_at_the_first_forwarder() {
        let first = Srs::new(b"first forwarder secret 0123456789");
        let second = Srs::new(b"second forwarder secret 012345678");
        let third = Srs::new(b"third forwarder secret 0123456789");
        let hop1 = first.forward("alice@example.org", "one.test", DAY);
        let hop2 = second.forward(&hop1, "two.test", DAY);
        assert!(hop2.starts_with("SRS1="), "{hop2}");
        assert!(
            hop2.contains("=one.test==") && hop2.ends_with("@two.test"),
            "{hop2}"
        );
        let hop3 = third.forward(&hop2, "three.test", DAY);
        assert!(
            hop3.contains("=one.test==") && hop3.ends_with("@three.test"),
            "{hop3}"
        );
        // Bounces: three → one directly, then one → alice.
        let back = third
            .reverse(hop3.split('@').next().unwrap(), DAY, 21)
            .unwrap();
        assert!(back.ends_with("@one.test"), "{back}");
        let home = first
            .reverse(back.split('@').next().unwrap(), DAY, 21)
            .unwrap();
        assert_eq!(home, "alice@example.org");
    }
}
