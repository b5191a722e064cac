//! The cost of DKIM-signing one message (issue 8): a 4 KiB message from a
//! local user, signed by cleanup's `Signer` with an RSA-2048 key, an
//! Ed25519 key, and both (the default for a domain with two keys).
//!
//!     cargo bench --bench dkim_sign
//!
//! A plain timing loop (no benchmark framework: one less dependency to
//! build on two cores); it prints the mean and the best of five rounds.

use merpati::config::Config;
use merpati::live::Live;
use merpati::mailauth::keys::{self, Algorithm};
use merpati::mailauth::sign::Signer;
use std::sync::Arc;
use std::time::Instant;

fn message(domain: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <alice@{domain}>\r\nTo: bob@example.net\r\nSubject: signing benchmark\r\n\
         Date: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <bench@{domain}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    while m.len() < 4096 {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog, signed and sealed.\r\n");
    }
    m
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_path_buf();
    let cases = [
        (
            "rsa-sha256 (2048 bit)",
            "rsa.bench.test",
            &[Algorithm::Rsa][..],
        ),
        ("ed25519-sha256", "ed.bench.test", &[Algorithm::Ed25519][..]),
        (
            "both",
            "both.bench.test",
            &[Algorithm::Rsa, Algorithm::Ed25519][..],
        ),
    ];
    for (_, domain, algorithms) in &cases {
        for (i, algorithm) in algorithms.iter().enumerate() {
            keys::generate(&data_dir, domain, &format!("s{i}"), *algorithm).expect("key");
        }
    }
    let config = Config {
        data_dir,
        ..Config::default()
    };
    let signer = Signer::new(Arc::new(Live::new(config)));
    for (label, domain, _) in &cases {
        let msg = message(domain);
        assert!(!signer.sign(&msg).is_empty(), "{label}: no signature");
        let rounds = 5;
        let per_round = 200;
        let mut best = f64::MAX;
        let mut total = 0.0;
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..per_round {
                std::hint::black_box(signer.sign(std::hint::black_box(&msg)));
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / per_round as f64;
            best = best.min(us);
            total += us;
        }
        println!(
            "{label:24} {:8.1} µs per message (mean of {rounds}×{per_round}), best {best:.1} µs",
            total / rounds as f64
        );
    }
}
