//! The Sieve engine's cost per message (issue 10):
//!
//!     cargo bench --bench sieve_run
//!
//! The 20-rule filter of `bench/sieve-rules.sieve` (header, address,
//! envelope, body and variables tests) against a 4 KiB business note
//! that none of its filing rules match, so every test runs:
//!
//! - `run`: the compiled program, header fields already parsed (delivery
//!   parses them once per message, for all recipients);
//! - `prepare + run`: with the header parse, for a message's only
//!   recipient;
//! - `compile`: what an upload costs (delivery never compiles);
//! - `decode`: the stored form back into a program (once per delivery);
//! - `load + run`: the active script read from a real store (redb),
//!   decoded and run: all a recipient with a script costs delivery.
//!
//! A plain timing loop, as `spam_classify`.

use merpati::sieve::eval::{self, Fields, Input, Limits};
use std::time::Instant;

const RULES: &str = include_str!("../bench/sieve-rules.sieve");

fn message() -> Vec<u8> {
    let mut m = b"Received: from mx.sender.example (mx.sender.example [192.0.2.1])\r\n\tby mail.example.org; Thu, 03 Dec 2026 12:00:00 +0000\r\n\
From: Sender <sender@sender.example>\r\nTo: user@example.org\r\nSubject: quarterly report\r\n\
Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <bench@sender.example>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
The report is at http://www.reports.example/q4 and http://files.example/x.\r\n"
        .to_vec();
    while m.len() < 4096 {
        m.extend_from_slice(
            b"Revenue grew in the fourth quarter; the budget review is on Monday.\r\n",
        );
    }
    m
}

fn time<F: FnMut()>(name: &str, rounds: usize, per: usize, mut f: F) {
    let mut results = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..per {
            f();
        }
        results.push(start.elapsed().as_secs_f64() * 1e6 / per as f64);
    }
    let mean = results.iter().sum::<f64>() / results.len() as f64;
    let best = results.iter().cloned().fold(f64::MAX, f64::min);
    println!("{name:<16} {mean:>8.2} µs per message (mean of {rounds} rounds; best {best:.2})");
}

fn main() {
    let program = merpati::sieve::compile(RULES).expect("the benchmark script compiles");
    let stored = merpati::sieve::codec::encode(&program);
    let message = message();
    let fields = Fields::of(&message);
    fn input<'a>(fields: &'a Fields, message: &'a [u8]) -> Input<'a> {
        Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "sender@sender.example",
            envelope_to: "user@example.org",
            delimiter: "+",
            message,
        }
    }
    let actions = eval::run(&program, &input(&fields, &message), Limits::default()).expect("runs");
    assert_eq!(actions, [eval::Action::keep()], "no rule files the message");
    println!(
        "script: {} rules, {} octets; stored form {} octets; message {} octets",
        20,
        RULES.len(),
        stored.len(),
        message.len()
    );
    time("run", 5, 20_000, || {
        let a = eval::run(&program, &input(&fields, &message), Limits::default());
        std::hint::black_box(a).ok();
    });
    time("prepare + run", 5, 20_000, || {
        let fields = Fields::of(&message);
        let a = eval::run(&program, &input(&fields, &message), Limits::default());
        std::hint::black_box(a).ok();
    });
    time("compile", 5, 2_000, || {
        std::hint::black_box(merpati::sieve::compile(RULES)).ok();
    });
    time("decode", 5, 20_000, || {
        std::hint::black_box(merpati::sieve::codec::decode(&stored));
    });
    // What delivery does per recipient: the active script's compiled
    // form read from a real store and decoded, then the run.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = merpati::store::RedbStore::open(&dir.path().join("store")).expect("store");
    use merpati::store::MailStore;
    store.create_account("user", None).expect("account");
    let settings = merpati::config::Sieve::default();
    merpati::sieve::scripts::put(&store, &settings, "user", "rules", RULES).expect("put");
    merpati::sieve::scripts::activate(&store, "user", Some("rules")).expect("activate");
    time("load + run", 5, 20_000, || {
        let program = merpati::sieve::scripts::active_program(&store, "user").expect("active");
        let a = eval::run(&program, &input(&fields, &message), Limits::default());
        std::hint::black_box(a).ok();
    });
}
