//! Prometheus metrics (prometheus-client): counters and histograms kept
//! process-wide and bumped where things happen (accept loop, TLS,
//! logins, queue manager, DNS), and gauges read at scrape time (queue
//! sizes, store size). Served as text at `/metrics` on the web listener.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    sessions_total: Family<Labels, Counter>,
    sessions: Family<Labels, Gauge>,
    refused: Family<Labels, Counter>,
    tls: Family<Labels, Counter>,
    auth_failures: Counter,
    received: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    delivery_seconds: Histogram,
    dns_seconds: Family<Labels, Histogram>,
    queue: Family<Labels, Gauge>,
    store_bytes: Gauge,
    http: Family<Labels, Counter>,
    acme_orders: Family<Labels, Counter>,
    certificate_expiry: Gauge,
    /// Plain totals for the webmail's status charts (the families above
    /// are for Prometheus and cannot be summed cheaply).
    pub totals: Totals,
}

/// Running totals since start, read by the status page's sampler.
#[derive(Default)]
pub struct Totals {
    pub received: std::sync::atomic::AtomicU64,
    pub delivered: std::sync::atomic::AtomicU64,
    pub deferred: std::sync::atomic::AtomicU64,
    pub bounced: std::sync::atomic::AtomicU64,
    /// Open sessions per service.
    pub open: std::sync::Mutex<std::collections::BTreeMap<String, i64>>,
}

impl Totals {
    fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn open_delta(&self, service: &str, delta: i64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open.entry(service.to_string()).or_default() += delta;
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn dns_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("merpati");
        let m = Metrics {
            sessions_total: Family::default(),
            sessions: Family::default(),
            refused: Family::default(),
            tls: Family::default(),
            auth_failures: Counter::default(),
            received: Family::default(),
            deliveries: Family::default(),
            // 10 ms .. about 45 h.
            delivery_seconds: Histogram::new(exponential_buckets(0.01, 4.0, 12)),
            dns_seconds: Family::new_with_constructor(dns_histogram),
            queue: Family::default(),
            store_bytes: Gauge::default(),
            http: Family::default(),
            acme_orders: Family::default(),
            certificate_expiry: Gauge::default(),
            totals: Totals::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions",
            "Connections accepted, by service",
            m.sessions_total.clone(),
        );
        registry.register(
            "sessions_open",
            "Connections open now, by service",
            m.sessions.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused by the connection limits, by service",
            m.refused.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes as a server, by result",
            m.tls.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed logins (all services)",
            m.auth_failures.clone(),
        );
        registry.register(
            "messages_received",
            "Messages queued, by protocol",
            m.received.clone(),
        );
        registry.register(
            "deliveries",
            "Final results per recipient, by transport and result",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time from arrival to a final result (sent or bounced)",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "dns_lookup_seconds",
            "DNS lookup time, by record type",
            m.dns_seconds.clone(),
        );
        registry.register("queue_messages", "Messages in each queue", m.queue.clone());
        registry.register(
            "store_bytes",
            "Bytes stored in all mailboxes",
            m.store_bytes.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by status class",
            m.http.clone(),
        );
        registry.register(
            "acme_orders",
            "ACME certificate orders, by result",
            m.acme_orders.clone(),
        );
        registry.register(
            "tls_certificate_expiry_seconds",
            "End of the served certificate's validity (Unix time)",
            m.certificate_expiry.clone(),
        );
        Metrics { registry, ..m }
    })
}

impl Metrics {
    pub fn session_opened(&self, service: &str) {
        let labels = vec![("service", service.to_string())];
        self.sessions_total.get_or_create(&labels).inc();
        self.sessions.get_or_create(&labels).inc();
        self.totals.open_delta(service, 1);
    }

    pub fn session_closed(&self, service: &str) {
        self.sessions
            .get_or_create(&vec![("service", service.to_string())])
            .dec();
        self.totals.open_delta(service, -1);
    }

    pub fn refused(&self, service: &str) {
        self.refused
            .get_or_create(&vec![("service", service.to_string())])
            .inc();
    }

    pub fn tls_handshake(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    pub fn acme_result(&self, ok: bool) {
        let result = if ok { "issued" } else { "failed" };
        self.acme_orders
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// The certificate in service now ends at `unix`.
    pub fn certificate_expiry(&self, unix: i64) {
        self.certificate_expiry.set(unix);
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn received(&self, protocol: &str) {
        self.received
            .get_or_create(&vec![("protocol", protocol.to_ascii_lowercase())])
            .inc();
        Totals::bump(&self.totals.received);
    }

    /// One final or deferred result; `age` (seconds since arrival) for
    /// final ones.
    pub fn delivery(&self, transport: &str, result: &str, age: Option<f64>) {
        self.deliveries
            .get_or_create(&vec![
                ("transport", transport.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        if let Some(age) = age {
            self.delivery_seconds.observe(age.max(0.0));
        }
        match result {
            "sent" => Totals::bump(&self.totals.delivered),
            "deferred" => Totals::bump(&self.totals.deferred),
            "bounced" => Totals::bump(&self.totals.bounced),
            _ => {}
        }
    }

    /// One HTTP response, counted by its class (`2xx`, `4xx`...).
    pub fn http_response(&self, status: u16) {
        self.http
            .get_or_create(&vec![("class", format!("{}xx", status / 100))])
            .inc();
    }

    pub fn dns_lookup(&self, kind: &str, seconds: f64) {
        self.dns_seconds
            .get_or_create(&vec![("type", kind.to_string())])
            .observe(seconds);
    }

    /// The text exposition, after setting the gauges read at scrape time.
    pub fn render(&self, queues: &[(&str, i64)], store_bytes: i64) -> String {
        for (queue, n) in queues {
            self.queue
                .get_or_create(&vec![("queue", queue.to_string())])
                .set(*n);
        }
        self.store_bytes.set(store_bytes);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
