//! Which path answers what. Autoconfig answers only for our own domains
//! (an unknown one is `404`), so the listener cannot be used to make a
//! client configure a stranger's mail through us.

use super::HttpService;
use super::autoconfig::{self, Server};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Ctx {
    svc: Arc<HttpService>,
    tls: bool,
}

/// The routes of one listener (`tls`: the HTTPS one), made at start;
/// `max_body` bounds every request body.
pub fn router(svc: Arc<HttpService>, tls: bool, max_body: usize) -> Router {
    let webmail = svc.webmail.clone().filter(|_| tls);
    let ctx = Ctx { svc, tls };
    let router: Router = Router::new()
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route(
            "/autodiscover/autodiscover.xml",
            post(outlook).get(outlook_get),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            post(outlook).get(outlook_get),
        )
        .route("/autodiscover/autodiscover.json", get(outlook_json_query))
        .route(
            "/autodiscover/autodiscover.json/v1.0/{address}",
            get(outlook_json),
        )
        .route(
            "/Autodiscover/Autodiscover.json/v1.0/{address}",
            get(outlook_json),
        )
        .route("/email.mobileconfig", get(apple))
        .route("/.well-known/mta-sts.txt", get(mta_sts))
        .route("/healthz", get(health))
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .with_state(ctx);
    // The webmail's routes (HTTPS only) keep their own state and limits.
    let router = match webmail {
        Some(webmail) => router.merge(crate::webmail::router(webmail)),
        None => router,
    };
    router
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(count))
}

/// Counts every response in the metrics.
async fn count(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    crate::metrics::get().http_response(response.status().as_u16());
    response
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "Not found\n".into(),
    )
}

impl Ctx {
    fn server(&self) -> Server {
        Server::from_config(&self.svc.config.get())
    }

    /// Whether mail for `domain` is ours.
    fn ours(&self, domain: &str) -> bool {
        !domain.is_empty()
            && self.svc.resolver.get().classify(domain) != crate::rewrite::DomainClass::Remote
    }

    /// Whether `address` is in one of our domains.
    fn address_is_ours(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.ours(&d.to_ascii_lowercase()))
    }

    /// The domain a request is about: the address's, else the Host
    /// name without `autoconfig.` / `autodiscover.`.
    fn domain(&self, address: Option<&str>, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        let domain = match address {
            Some(a) => a.rsplit_once('@')?.1.to_ascii_lowercase(),
            None => {
                let host = request_host(headers, uri)?;
                host.strip_prefix("autoconfig.")
                    .or_else(|| host.strip_prefix("autodiscover."))
                    .unwrap_or(&host)
                    .to_string()
            }
        };
        self.ours(&domain).then_some(domain)
    }
}

/// The host a request names, lower-cased, without a port: Host, or for
/// HTTP/2 the `:authority`.
fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = match headers.get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => uri.host()?,
    };
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    Some(host.to_ascii_lowercase())
}

/// An address as clients send it: `user@domain`, bounded.
fn address(raw: &str) -> Option<String> {
    let raw = raw.trim();
    (raw.len() <= 320 && crate::address::Address::parse(raw).is_ok() && raw.contains('@'))
        .then(|| raw.to_string())
}

async fn thunderbird(
    State(ctx): State<Ctx>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let given = query.get("emailaddress").map(|a| address(a));
    let Some(given) = given.map_or(Some(None), |a| a.map(Some)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Bad address\n".into(),
        );
    };
    match ctx.domain(given.as_deref(), &headers, &uri) {
        Some(domain) => text(
            StatusCode::OK,
            "application/xml; charset=utf-8",
            autoconfig::thunderbird(&ctx.server(), &domain),
        ),
        None => not_found(),
    }
}

async fn outlook(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let request = String::from_utf8_lossy(&body);
    let Some(address) = autoconfig::pox_address(&request).and_then(|a| address(&a)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "No EMailAddress\n".into(),
        );
    };
    if !ctx.address_is_ours(&address) {
        return not_found();
    }
    text(
        StatusCode::OK,
        "application/xml; charset=utf-8",
        autoconfig::outlook(&ctx.server(), &address),
    )
}

/// Clients probe with GET before POSTing; Exchange answers that with an
/// error document too, but a plain 405 is what they act on.
async fn outlook_get() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "",
    )
        .into_response()
}

fn json_reply(ctx: &Ctx, raw: &str, protocol: Option<&String>) -> Response {
    let Some(address) = address(raw) else {
        return text(
            StatusCode::BAD_REQUEST,
            "application/json",
            "{\"ErrorCode\":\"InvalidUser\",\"ErrorMessage\":\"The given user is invalid\"}".into(),
        );
    };
    if !ctx.address_is_ours(&address) {
        return not_found();
    }
    let hostname = ctx.svc.config.get().myhostname.clone();
    let (status, body) = autoconfig::outlook_json(&hostname, protocol.map_or("", String::as_str));
    text(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        "application/json; charset=utf-8",
        body,
    )
}

async fn outlook_json(
    State(ctx): State<Ctx>,
    Path(address): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    json_reply(
        &ctx,
        &address,
        query.get("Protocol").or_else(|| query.get("protocol")),
    )
}

async fn outlook_json_query(
    State(ctx): State<Ctx>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let address = query
        .get("Email")
        .or_else(|| query.get("email"))
        .cloned()
        .unwrap_or_default();
    json_reply(
        &ctx,
        &address,
        query.get("Protocol").or_else(|| query.get("protocol")),
    )
}

async fn apple(State(ctx): State<Ctx>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(address) = query.get("email").and_then(|a| address(a)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Give ?email=ADDRESS\n".into(),
        );
    };
    if !ctx.address_is_ours(&address) {
        return not_found();
    }
    match autoconfig::mobileconfig(&ctx.server(), &address) {
        Some(profile) => {
            let mut response = text(
                StatusCode::OK,
                "application/x-apple-aspen-config; charset=utf-8",
                profile,
            );
            if let Ok(v) =
                header::HeaderValue::from_str("attachment; filename=\"email.mobileconfig\"")
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        None => not_found(),
    }
}

/// Prometheus text format, for `mynetworks` and `http.metrics_allow`
/// only (`403` for everyone else: the figures describe the server).
async fn metrics(State(ctx): State<Ctx>, peer: Option<axum::Extension<super::Peer>>) -> Response {
    let config = ctx.svc.config.get();
    let Some(axum::Extension(super::Peer(ip))) = peer else {
        return text(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "Forbidden\n".into(),
        );
    };
    let ip = ip.to_canonical();
    let allowed = config
        .mynetworks
        .iter()
        .chain(&config.http.metrics_allow)
        .filter_map(|c| c.parse::<crate::config::Cidr>().ok())
        .any(|c| c.contains(ip));
    if !allowed {
        return text(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "Forbidden\n".into(),
        );
    }
    let queue_dir = config.queue_dir();
    let store = ctx.svc.store.clone();
    let gathered = tokio::task::spawn_blocking(move || {
        let queues: Vec<(&str, i64)> = crate::queue::spool::QueueName::ALL
            .iter()
            .map(|q| {
                let name = q.dir_name();
                let n = std::fs::read_dir(queue_dir.join(name)).map_or(0, |entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .count() as i64
                });
                (name, n)
            })
            .collect();
        let bytes: u64 = store
            .accounts()
            .map(|list| list.iter().map(|a| a.used_bytes).sum())
            .unwrap_or(0);
        (queues, i64::try_from(bytes).unwrap_or(i64::MAX))
    })
    .await;
    let Ok((queues, bytes)) = gathered else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "Error\n".into(),
        );
    };
    text(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        crate::metrics::get().render(&queues, bytes),
    )
}

/// RFC 8461 §3.2: the policy, on `mta-sts.DOMAIN` over HTTPS only, for
/// our domains; our one MX is this host.
async fn mta_sts(State(ctx): State<Ctx>, headers: HeaderMap, uri: Uri) -> Response {
    let host = request_host(&headers, &uri).unwrap_or_default();
    let Some(domain) = host.strip_prefix("mta-sts.") else {
        return not_found();
    };
    if !ctx.tls || !ctx.ours(domain) {
        return not_found();
    }
    let config = ctx.svc.config.get();
    let policy = format!(
        "version: STSv1\r\nmode: {}\r\nmx: {}\r\nmax_age: {}\r\n",
        config.http.mta_sts_mode.as_str(),
        config.myhostname,
        config.http.mta_sts_max_age.0.as_secs()
    );
    text(StatusCode::OK, "text/plain; charset=utf-8", policy)
}

/// RFC 8555 §8.3: the key authorization for a token of an open order.
async fn acme_challenge(
    State(ctx): State<Ctx>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match ctx.svc.acme.http_answer(&token) {
        Some(answer) => text(StatusCode::OK, "application/octet-stream", answer),
        None => not_found(),
    }
}

async fn health() -> Response {
    text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
}

/// Everything else: on the plain port a redirect to HTTPS, on HTTPS a 404.
async fn fallback(State(ctx): State<Ctx>, uri: Uri) -> Response {
    if ctx.tls {
        return not_found();
    }
    let host = ctx.svc.config.get().myhostname.clone();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{path}");
    match header::HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, value)],
            "",
        )
            .into_response(),
        Err(_) => not_found(),
    }
}
