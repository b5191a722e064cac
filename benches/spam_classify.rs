//! The spam filter's cost per message (issue 9), and what its token
//! tables take:
//!
//!     cargo bench --bench spam_classify
//!
//! - `inspect`: the fixed tests, tokens and links of a 4 KiB message;
//! - `judge`: the classifier's verdict for one user, table in the cache;
//! - `judge (cold)`: the same with the user's table read from the store
//!   first (a user not among the `cache_users` most recent);
//! - `learn`: one lesson (both tables rewritten).
//!
//! Then a table filled to `max_tokens` (100,000), its stored size, and
//! the resident memory of 10,000 users' judgements with the default cache
//! of 64 tables. A plain timing loop, as `dkim_sign`.

use merpati::config::Spam;
use merpati::spam::SpamFilter;
use merpati::spam::rules::Arrival;
use merpati::store::{MailStore, RedbStore};
use std::sync::Arc;
use std::time::Instant;

const WORDS: &[&str] = &[
    "meeting", "project", "invoice", "cheap", "winner", "casino", "agenda", "report", "offer",
    "prize", "budget", "review", "pills", "urgent", "lottery", "minutes", "schedule", "free",
    "discount", "deadline", "release", "customer", "account", "verify", "password", "holiday",
];

fn message(seed: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <s{seed}@sender.example>\r\nTo: user@localhost\r\nSubject: note {seed}\r\n\
         Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{seed}@sender.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         See http://www.site{}.example/page and http://other.example/.\r\n",
        seed % 50
    )
    .into_bytes();
    let mut n = seed;
    while m.len() < 4096 {
        n = n.wrapping_mul(2_654_435_761).wrapping_add(12_345);
        let w = WORDS[n % WORDS.len()];
        m.extend_from_slice(format!("{w}{} {w} ", n % 997).as_bytes());
        if n.is_multiple_of(9) {
            m.extend_from_slice(b"\r\n");
        }
    }
    m
}

fn time<F: FnMut(usize)>(name: &str, rounds: usize, per: usize, mut f: F) {
    let mut results = Vec::new();
    for r in 0..rounds {
        let start = Instant::now();
        for i in 0..per {
            f(r * per + i);
        }
        results.push(start.elapsed().as_secs_f64() * 1e6 / per as f64);
    }
    let mean = results.iter().sum::<f64>() / results.len() as f64;
    let best = results.iter().cloned().fold(f64::MAX, f64::min);
    println!("{name:<28} {mean:>9.1} µs per message (mean; best {best:.1})");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn MailStore> =
        Arc::new(RedbStore::open(&dir.path().join("store")).expect("store"));
    let settings = Spam {
        min_learns: 10,
        ..Spam::default()
    };
    let filter = SpamFilter::new(store.clone(), dir.path());
    store.create_account("user", None).expect("account");
    for n in 0..400 {
        filter
            .learn(&settings, "user", &message(n), n % 2 == 0)
            .expect("learn");
    }
    let (spam, ham, tokens) = filter.table_size(&settings, "user");
    println!("trained table: {spam} spam, {ham} ham, {tokens} tokens");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    // No DNS lists are configured: nothing is looked up.
    let nowhere = ["127.0.0.1:9".parse().expect("address")];
    let dns: Arc<dyn merpati::dns::Resolver> = Arc::new(
        merpati::dns::HickoryResolver::new(&nowhere, std::time::Duration::from_secs(1))
            .expect("resolver"),
    );
    let arrival = Arrival {
        client_ip: "192.0.2.1".parse().expect("ip"),
        client_name: "unknown",
        helo: "mx.sender.example",
        myhostname: "mx.ours.example",
        auth: None,
        now: 1_796_300_000,
    };
    let messages: Vec<Vec<u8>> = (0..1000).map(|n| message(10_000 + n)).collect();
    time("inspect + fixed tests", 5, 1000, |i| {
        let m = &messages[i % messages.len()];
        std::hint::black_box(merpati::spam::rules::inspect(m, 512 * 1024, 20));
    });
    let analyses: Vec<_> = messages
        .iter()
        .map(|m| {
            // No DNS lists: nothing is looked up.
            let sites = merpati::spam::Sites {
                client: &[],
                uri: &[],
            };
            runtime.block_on(filter.analyse(
                &settings,
                &sites,
                dns.clone(),
                m,
                "s@sender.example",
                arrival,
            ))
        })
        .collect();
    time("judge (table cached)", 5, 1000, |i| {
        std::hint::black_box(filter.judge(&settings, &analyses[i % analyses.len()], Some("user")));
    });
    time("judge (table from store)", 5, 100, |i| {
        filter.forget("user");
        std::hint::black_box(filter.judge(&settings, &analyses[i % analyses.len()], Some("user")));
    });
    time("learn", 3, 50, |i| {
        filter
            .learn(&settings, "user", &messages[i % messages.len()], i % 3 == 0)
            .expect("learn");
    });

    // A full table: 100,000 tokens.
    store.create_account("full", None).expect("account");
    let mut n = 0;
    while filter.table_size(&settings, "full").2 < settings.max_tokens * 9 / 10 {
        let mut m = message(50_000 + n).to_vec();
        m.extend_from_slice(format!("unique{n}a unique{n}b unique{n}c\r\n").as_bytes());
        for k in 0..200 {
            m.extend_from_slice(format!("w{n}x{k} ").as_bytes());
        }
        filter
            .learn(&settings, "full", &m, n % 2 == 0)
            .expect("learn");
        n += 1;
    }
    let stored = store
        .account_data("full", "spam.tokens")
        .expect("read")
        .map_or(0, |b| b.len());
    let (s, h, t) = filter.table_size(&settings, "full");
    println!(
        "full table: {s} spam, {h} ham, {t} tokens, {:.1} MB stored",
        stored as f64 / 1e6
    );
    time("judge (full table cached)", 5, 1000, |i| {
        std::hint::black_box(filter.judge(&settings, &analyses[i % analyses.len()], Some("full")));
    });

    // 10,000 users, each with a table of its own (40 lessons), judged in
    // turn: memory stays bounded by the cache, not by the number of users.
    store.create_account("small", None).expect("account");
    for n in 0..40 {
        filter
            .learn(&settings, "small", &message(90_000 + n), n % 2 == 0)
            .expect("learn");
    }
    let small_tokens = filter.table_size(&settings, "small").2;
    let table = store
        .account_data("small", "spam.tokens")
        .expect("read")
        .expect("table");
    let users = 10_000;
    for u in 0..users {
        let name = format!("u{u}");
        store.create_account(&name, None).expect("account");
        store
            .set_account_data(&name, "spam.tokens", Some(&table))
            .expect("write");
    }
    // One pass to warm the store's page cache, then the measured pass.
    for u in 0..users {
        std::hint::black_box(filter.judge(
            &settings,
            &analyses[u % analyses.len()],
            Some(&format!("u{u}")),
        ));
    }
    let before = rss_kib();
    let start = Instant::now();
    for u in 0..users {
        std::hint::black_box(filter.judge(
            &settings,
            &analyses[u % analyses.len()],
            Some(&format!("u{u}")),
        ));
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / users as f64;
    println!(
        "10,000 users ({small_tokens} tokens, {:.0} KB stored each): {per:.0} µs per judgement (table read from the store), RSS {:.1} MiB before and {:.1} MiB after the pass (cache_users = {})",
        table.len() as f64 / 1e3,
        before as f64 / 1024.0,
        rss_kib() as f64 / 1024.0,
        settings.cache_users
    );
}
