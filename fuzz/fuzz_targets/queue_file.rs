//! Queue file decoder (`merpati::queue::file::QueueFile::decode`): what the
//! queue manager reads back from disk, and what `sendmail` leaves in
//! `maildrop`.
//!
//! Checked: no panic (a bad file must become a `FormatError`, so it goes to
//! `corrupt`); `require_recipients` only ever adds the no-recipient error;
//! whatever decodes re-encodes to a file that decodes to the same value and
//! is itself a fixed point of encode/decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use merpati::queue::file::QueueFile;

fuzz_target!(|data: &[u8]| {
    let lenient = QueueFile::decode(data, false);
    let strict = QueueFile::decode(data, true);
    match (&lenient, &strict) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(a), Err(_)) => assert!(a.recipients.is_empty(), "strict refused {a:?}"),
        (Err(_), Ok(_)) => panic!("strict accepted what lenient refused"),
        (Err(a), Err(b)) => {
            let _ = (a.to_string(), b.to_string());
        }
    }
    if let Ok(qf) = lenient {
        let encoded = qf.encode();
        let again = QueueFile::decode(&encoded, false).expect("re-encoded file must decode");
        assert_eq!(again, qf);
        assert_eq!(again.encode(), encoded);
        assert_eq!(qf.size(), qf.body.len());
    }
});
