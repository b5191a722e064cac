//! Just enough DER to read a certificate's validity period (RFC 5280
//! §4.1.2.5): when to renew an ACME certificate, and what `doctor` reports
//! about the one a port serves. Bounded and total: malformed input is
//! `None`, never a panic.

/// A certificate's `notBefore` and `notAfter`, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const EXPLICIT_VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of a DER certificate.
pub fn validity(der: &[u8]) -> Option<Validity> {
    fields(der).map(|f| f.validity)
}

/// Whether the certificate names itself as its issuer (self-signed, as
/// the generated one is).
pub fn self_issued(der: &[u8]) -> Option<bool> {
    fields(der).map(|f| f.issuer == f.subject)
}

struct Fields<'a> {
    issuer: &'a [u8],
    validity: Validity,
    subject: &'a [u8],
}

fn fields(der: &[u8]) -> Option<Fields<'_>> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (mut tag, mut value, mut next) = tlv(rest)?;
    if tag == EXPLICIT_VERSION {
        rest = next;
        (tag, value, next) = tlv(rest)?;
    }
    let _ = value;
    if tag != INTEGER {
        return None;
    }
    // signature AlgorithmIdentifier, issuer Name, validity, subject Name.
    let (_, _, next) = tlv(next)?;
    let (_, issuer, next) = tlv(next)?;
    let (tag, validity, next) = tlv(next)?;
    let (_, subject, _) = tlv(next)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, before, next) = tlv(validity)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = tlv(next)?;
    let not_after = time(tag, after)?;
    Some(Fields {
        issuer,
        validity: Validity {
            not_before,
            not_after,
        },
        subject,
    })
}

/// One tag-length-value: (tag, value, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    let (value, after) = rest.split_at_checked(len)?;
    Some((tag, value, after))
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19xx.
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        (GENERALIZED_TIME, 14) => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = crate::rfc5322::days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["mail.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let v = validity(cert.der()).unwrap();
        assert_eq!(
            v.not_before,
            crate::rfc5322::days_from_civil(2026, 1, 2) * 86_400
        );
        // After 2049 RFC 5280 switches to GeneralizedTime.
        assert_eq!(
            v.not_after,
            crate::rfc5322::days_from_civil(2051, 3, 4) * 86_400
        );
        assert_eq!(self_issued(cert.der()), Some(true));
        let mut ca = rcgen::CertificateParams::new(vec![]).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
        let leaf = rcgen::CertificateParams::new(vec!["mail.example".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        assert_eq!(self_issued(leaf.der()), Some(false));
    }

    #[test]
    fn malformed_input_is_none() {
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        assert_eq!(time(UTC_TIME, b"2613011200Z"), None);
        assert_eq!(time(UTC_TIME, b"261301120000Z"), None);
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0),);
    }
}
