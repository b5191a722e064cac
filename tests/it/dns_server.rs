//! A real DNS server (hickory-server) on loopback for tests that run the
//! daemon as a separate process: it serves on its own thread and runtime,
//! so plain `#[test]` functions can use it. Point a server at it with
//! `Builder::dns(&dns.config())`.

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A record of a test zone. Owners are absolute names (`"mx.b.test."`).
pub enum Rr {
    /// `name MX preference exchange`; an exchange of `.` is a null MX.
    Mx(&'static str, u16, &'static str),
    A(&'static str, Ipv4Addr),
    Aaaa(&'static str, Ipv6Addr),
    /// `name TXT "..."`: one record, split into 255-byte character-strings
    /// as a zone file would (DKIM keys are longer than one string).
    Txt(String, String),
    /// `name PTR target` (reverse DNS, in an `in-addr.arpa.` zone).
    Ptr(&'static str, &'static str),
    /// Every question for this name is answered SERVFAIL (a broken
    /// authoritative server): a temporary error for the resolver.
    ServFail(&'static str),
}

/// The catalog, except for names that fail.
struct Failing {
    catalog: Catalog,
    servfail: Vec<LowerName>,
}

#[async_trait::async_trait]
impl RequestHandler for Failing {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let fails = request
            .request_info()
            .is_ok_and(|info| self.servfail.iter().any(|n| n == info.query.name()));
        if !fails {
            return self
                .catalog
                .handle_request::<R, T>(request, response_handle)
                .await;
        }
        let response = MessageResponseBuilder::new(&request.queries, None)
            .error_msg(&request.metadata, ResponseCode::ServFail);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata: Metadata::response_from_request(&request.metadata),
                counts: Default::default(),
            }),
        }
    }
}

type Zone = InMemoryZoneHandler<hickory_server::net::runtime::TokioRuntimeProvider>;

pub struct DnsServer {
    pub addr: SocketAddr,
    zones: Vec<(Name, Arc<Zone>)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("name")
}

fn txt_strings(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return vec![String::new()];
    }
    bytes
        .chunks(255)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect()
}

fn record(rr: &Rr) -> Record {
    match rr {
        Rr::Mx(owner, preference, exchange) => {
            let exchange = if *exchange == "." {
                Name::root()
            } else {
                name(exchange)
            };
            Record::from_rdata(name(owner), 60, RData::MX(MX::new(*preference, exchange)))
        }
        Rr::A(owner, ip) => Record::from_rdata(name(owner), 60, RData::A(A(*ip))),
        Rr::Aaaa(owner, ip) => Record::from_rdata(name(owner), 60, RData::AAAA(AAAA(*ip))),
        Rr::Txt(owner, text) => {
            Record::from_rdata(name(owner), 60, RData::TXT(TXT::new(txt_strings(text))))
        }
        Rr::Ptr(owner, target) => {
            Record::from_rdata(name(owner), 60, RData::PTR(PTR(name(target))))
        }
        Rr::ServFail(_) => unreachable!("not a record"),
    }
}

impl DnsServer {
    /// Serves one zone per origin (`"b.test."`) with the given records.
    pub fn start(origins: &[&str], records: Vec<Rr>) -> DnsServer {
        let mut catalog = Catalog::new();
        let mut zones = Vec::new();
        for origin in origins {
            let origin = name(origin);
            let mut zone = Zone::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
            let soa = SOA::new(
                name("ns.test."),
                name("hostmaster.test."),
                1,
                3600,
                600,
                86400,
                60,
            );
            assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1));
            for rr in records.iter().filter(|rr| !matches!(rr, Rr::ServFail(_))) {
                let record = record(rr);
                if origin.zone_of(&record.name) {
                    assert!(zone.upsert_mut(record, 1), "upsert");
                }
            }
            let zone = Arc::new(zone);
            zones.push((origin.clone(), zone.clone()));
            let handler: Arc<dyn ZoneHandler> = zone;
            catalog.upsert(LowerName::new(&origin), vec![handler]);
        }
        let servfail = records
            .iter()
            .filter_map(|rr| match rr {
                Rr::ServFail(owner) => Some(LowerName::new(&name(owner))),
                _ => None,
            })
            .collect();
        let handler = Failing { catalog, servfail };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut server = Server::new(handler);
                // UDP and TCP on the same port number (the resolver uses
                // TCP for truncated answers, and DKIM keys are long).
                let mut bound = None;
                for _ in 0..20 {
                    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .expect("udp");
                    let addr = udp.local_addr().expect("addr");
                    let Ok(tcp) = tokio::net::TcpListener::bind(addr).await else {
                        continue;
                    };
                    server.register_socket(udp);
                    server.register_listener(tcp, Duration::from_secs(5), 65536);
                    bound = Some(addr);
                    break;
                }
                addr_tx
                    .send(bound.expect("a free UDP+TCP port pair"))
                    .expect("send addr");
                let _ = stop_rx.await;
                drop(server);
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("dns server started");
        DnsServer {
            addr,
            zones,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Adds a record while the server runs (to the most specific zone
    /// that holds its name). Call from a plain `#[test]`, not from a
    /// runtime.
    pub fn add(&self, rr: Rr) {
        let record = record(&rr);
        let zone = self
            .zones
            .iter()
            .filter(|(origin, _)| origin.zone_of(&record.name))
            .max_by_key(|(origin, _)| origin.num_labels())
            .map(|(_, zone)| zone.clone())
            .expect("a zone for the record");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(runtime.block_on(zone.upsert(record, 2)), "upsert");
    }

    /// The `[dns]` keys that point a Merpati at this server.
    pub fn config(&self) -> String {
        format!("nameservers = [\"{}\"]\ntimeout = \"2s\"", self.addr)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
