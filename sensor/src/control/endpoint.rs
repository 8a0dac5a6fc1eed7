//! The sensor's own small HTTP endpoint (`--metrics-listen`): `/metrics` (Prometheus text
//! format, rendered from the installed recorder), `/healthz` (the process serves) and
//! `/readyz` (capture is attached and the workers run; 503 before and after). With online
//! learning: `POST /feedback` and `POST /model/reload` (bearer token of a configured
//! source) and `GET /learning` (the learner's status). Nothing here is on the packet path.
//!
//! Served by hyper (HTTP/1.1) on a runtime of its own thread, with the limits a port on
//! `0.0.0.0` needs: at most [`MAX_CONNECTIONS`] connections (more are closed at accept and
//! counted), request headers within [`HEADER_TIMEOUT`], bodies within [`BODY_TIMEOUT`] and
//! [`MAX_BODY`] bytes, and every connection closed after [`CONNECTION_LIFETIME`]. Slow or
//! silent clients each hold one connection of the cap and nothing else: probes and scrapes
//! are answered concurrently; the learner's calls run on blocking threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// Readiness shared between the capture runtime and the endpoint.
#[derive(Debug, Default)]
pub struct Health {
    /// Capture is attached and the workers run.
    pub ready: AtomicBool,
}

/// The learning API's side of the endpoint.
#[derive(Clone, Default)]
pub struct Api {
    /// The learner's queue (no learning: feedback is refused with 503).
    pub learn: Option<crossbeam_channel::Sender<crate::learn::service::Msg>>,
    /// Bearer token -> source name.
    pub tokens: Vec<(String, String)>,
    /// Set to ask for a model reload.
    pub reload: Option<Arc<AtomicBool>>,
    /// Verdict history for the live page (absent: the page shows nothing).
    pub history: Option<Arc<crate::export::live::History>>,
}

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    flow_id: Option<u64>,
    client_ip: Option<std::net::IpAddr>,
    client_port: Option<u16>,
    server_ip: Option<std::net::IpAddr>,
    server_port: Option<u16>,
    class: serde_json::Value,
}

type Reply = (u16, String, &'static str);

fn json_reply(code: u16, v: &serde_json::Value) -> Reply {
    (code, format!("{v}\n"), "application/json")
}

fn error(code: u16, msg: &str) -> Reply {
    json_reply(code, &serde_json::json!({ "error": msg }))
}

/// Most connections served at once; more are closed at accept (counted as refused).
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection stays open (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// One request as the handlers see it: the body is already read (bounded).
struct Req {
    post: bool,
    path: String,
    /// The bearer token, if the request carries one.
    token: Option<String>,
    body: Vec<u8>,
}

impl Api {
    /// The source whose token the request carries.
    fn source(&self, token: Option<&str>) -> Option<String> {
        let token = token?;
        // Compare every token in full (no early exit on the first differing byte).
        let mut found = None;
        for (t, s) in &self.tokens {
            let same =
                t.len() == token.len() && t.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same {
                found = Some(s.clone());
            }
        }
        found
    }

    fn feedback(&self, req: &Req) -> Reply {
        let Some(tx) = &self.learn else { return error(503, "online learning is not running") };
        let Some(source) = self.source(req.token.as_deref()) else {
            return error(401, "missing or unknown bearer token");
        };
        let fb: FeedbackBody = match serde_json::from_slice(&req.body) {
            Ok(fb) => fb,
            Err(e) => return error(400, &format!("invalid JSON: {e}")),
        };
        let label = match &fb.class {
            serde_json::Value::Number(n) => n.as_u64().filter(|v| *v <= 2).map(|v| v as usize),
            serde_json::Value::String(s) => match s.as_str() {
                "benign" => Some(0),
                "attack" => Some(1),
                "malware" => Some(2),
                _ => None,
            },
            _ => None,
        };
        let Some(label) = label else { return error(400, "class must be 0, 1, 2, benign, attack or malware") };
        let tuple = match (fb.client_ip, fb.client_port, fb.server_ip, fb.server_port) {
            (Some(a), Some(p), Some(c), Some(q)) => Some((a, p, c, q)),
            (None, None, None, None) => None,
            _ => return error(400, "give all of client_ip, client_port, server_ip, server_port, or none"),
        };
        if fb.flow_id.is_none() && tuple.is_none() {
            return error(400, "give flow_id or the flow's 5-tuple");
        }
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        let req = crate::learn::service::FeedbackRequest { flow_id: fb.flow_id, tuple, label, source };
        if tx.send_timeout(crate::learn::service::Msg::Feedback(req, rtx), Duration::from_secs(2)).is_err() {
            return error(503, "the learner is busy; retry");
        }
        match rrx.recv_timeout(Duration::from_secs(5)) {
            Ok(Some(o)) => {
                use crate::learn::Outcome;
                let code = match o {
                    Outcome::RateLimited => 429,
                    Outcome::Duplicate => 409,
                    Outcome::Invalid | Outcome::UnknownSource => 400,
                    _ => 200,
                };
                json_reply(code, &serde_json::json!({ "outcome": o.as_str() }))
            }
            Ok(None) => error(404, "no such flow among the recent scored flows"),
            Err(_) => error(503, "the learner did not answer; retry"),
        }
    }

    fn status(&self) -> Reply {
        let Some(tx) = &self.learn else { return error(503, "online learning is not running") };
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        if tx.send_timeout(crate::learn::service::Msg::Status(rtx), Duration::from_secs(2)).is_err() {
            return error(503, "the learner is busy; retry");
        }
        match rrx.recv_timeout(Duration::from_secs(5)) {
            Ok(st) => json_reply(200, &serde_json::to_value(st).unwrap_or_default()),
            Err(_) => error(503, "the learner did not answer; retry"),
        }
    }

    fn reload(&self, req: &Req) -> Reply {
        if self.source(req.token.as_deref()).is_none() {
            return error(401, "missing or unknown bearer token");
        }
        match &self.reload {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                json_reply(202, &serde_json::json!({ "reload": "requested" }))
            }
            None => error(503, "no model to reload"),
        }
    }
}

/// What the request handlers share.
struct Ctx {
    metrics: PrometheusHandle,
    health: Arc<Health>,
    api: Api,
}

/// A running endpoint; dropping it stops the server (open connections are closed).
pub struct Endpoint {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Binds `addr` and serves until dropped.
    pub fn start(addr: SocketAddr, metrics: PrometheusHandle, health: Arc<Health>, api: Api) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let ctx = Arc::new(Ctx { metrics, health, api });
        let thread = std::thread::Builder::new().name("nightjar-http".into()).spawn(move || {
            rt.block_on(serve(listener, ctx, stopped));
            // In-flight learner calls finish on their own (bounded by their timeouts).
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread), addr: bound })
    }
}

async fn serve(listener: std::net::TcpListener, ctx: Arc<Ctx>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors and the like: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // At the cap: closed at once, counted.
            metrics::counter!(crate::export::metrics::HTTP_REFUSED).increment(1);
            drop(stream);
            continue;
        };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| answer(req, Arc::clone(&ctx)));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A client gone, a timeout or the lifetime: the connection ends, nothing else.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

type Body = http_body_util::Full<bytes::Bytes>;

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    ctx: Arc<Ctx>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let post = req.method() == hyper::Method::POST;
    let path = req.uri().path().to_owned();
    let token = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    if path == "/assets/echarts.min.js" && !post {
        return Ok(response(
            200,
            bytes::Bytes::from_static(super::page::ECHARTS),
            &[("Content-Type", "application/javascript"), ("Cache-Control", "max-age=86400")],
        ));
    }
    let body = if post {
        let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
        match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes().to_vec(),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Ok(reply(error(413, "body larger than 64 KiB")));
            }
            Ok(Err(_)) => return Ok(reply(error(400, "cannot read the request body"))),
            Err(_) => return Ok(reply(error(408, "the body did not arrive in time"))),
        }
    } else {
        Vec::new()
    };
    let r = Req { post, path, token, body };
    // The learner's calls block (up to seconds): a blocking thread each.
    let waits = matches!((r.path.as_str(), r.post), ("/feedback" | "/model/reload", true) | ("/learning", false));
    let out = if waits {
        let ctx = Arc::clone(&ctx);
        tokio::task::spawn_blocking(move || route(&r, &ctx)).await.unwrap_or_else(|_| error(500, "handler failed"))
    } else {
        route(&r, &ctx)
    };
    Ok(reply(out))
}

fn response(code: u16, body: bytes::Bytes, headers: &[(&'static str, &'static str)]) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(http_body_util::Full::new(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in headers {
        resp.headers_mut().insert(*k, hyper::header::HeaderValue::from_static(v));
    }
    resp
}

fn reply((code, body, ctype): Reply) -> hyper::Response<Body> {
    response(code, bytes::Bytes::from(body), &[("Content-Type", ctype)])
}

/// Answers one request.
fn route(req: &Req, ctx: &Ctx) -> Reply {
    let (health, api) = (&ctx.health, &ctx.api);
    match (req.path.as_str(), req.post) {
        ("/" | "/index.html", false) => (200, super::page::PAGE.to_owned(), "text/html; charset=utf-8"),
        ("/api/live", false) => match &api.history {
            Some(h) => (200, h.snapshot_json(), "application/json"),
            None => error(503, "no verdict history in this mode"),
        },
        ("/metrics", false) => (200, ctx.metrics.render(), "text/plain; version=0.0.4"),
        ("/healthz", false) => (200, "ok\n".to_owned(), "text/plain"),
        ("/readyz", false) if health.ready.load(Ordering::Relaxed) => (200, "ready\n".to_owned(), "text/plain"),
        ("/readyz", false) => (503, "not ready\n".to_owned(), "text/plain"),
        ("/feedback", true) => api.feedback(req),
        ("/learning", false) => api.status(),
        ("/model/reload", true) => api.reload(req),
        ("/feedback" | "/model/reload", false) | ("/metrics" | "/healthz" | "/readyz" | "/learning", true) => {
            (405, "method not allowed\n".to_owned(), "text/plain")
        }
        _ => (404, "not found\n".to_owned(), "text/plain"),
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    fn slow_post(addr: SocketAddr) -> std::net::TcpStream {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "POST /feedback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Length: 60000\r\n\r\n"
        )
        .expect("send");
        s
    }

    fn learning_endpoint() -> Endpoint {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::mem::forget(rx);
        let api = Api { learn: Some(tx), tokens: vec![("0123456789abcdef".into(), "api".into())], ..Api::default() };
        Endpoint::start("127.0.0.1:0".parse().expect("addr"), recorder.handle(), Arc::default(), api).expect("bind")
    }

    #[test]
    fn dozens_of_clients_that_never_send_their_body_delay_no_probe() {
        let ep = learning_endpoint();
        // Slow clients: feedback POSTs that declare 60,000 bytes and send none, and
        // connections that send half a request line.
        let mut slow: Vec<_> = (0..40).map(|_| slow_post(ep.addr)).collect();
        for _ in 0..10 {
            let mut s = std::net::TcpStream::connect(ep.addr).expect("connect");
            write!(s, "GET /metr").expect("send");
            slow.push(s);
        }
        // Health, readiness and metrics still answer (the reads would block if not). The
        // time each took is printed for the README (measured, not asserted).
        let mut took = Vec::new();
        for path in ["/healthz", "/readyz", "/metrics", "/healthz"] {
            let started = std::time::Instant::now();
            let mut s = std::net::TcpStream::connect(ep.addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("answered while slow clients hang");
            assert!(out.starts_with("HTTP/1."), "{path}: {out}");
            took.push(format!("{path} {:.2} ms", started.elapsed().as_secs_f64() * 1e3));
        }
        eprintln!("with 50 slow clients connected: {}", took.join(", "));
        drop(slow);
    }

    #[test]
    fn a_body_that_does_not_arrive_is_answered_408_and_the_connection_cap_holds() {
        let ep = learning_endpoint();
        let mut s = slow_post(ep.addr);
        s.set_read_timeout(Some(BODY_TIMEOUT * 3)).expect("timeout");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");

        // MAX_CONNECTIONS silent connections hold every slot: the next is closed at once
        // (read returns end of stream without an answer) ...
        let held: Vec<_> =
            (0..MAX_CONNECTIONS).map(|_| std::net::TcpStream::connect(ep.addr).expect("connect")).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut extra = std::net::TcpStream::connect(ep.addr).expect("connect");
        extra.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = write!(extra, "GET /healthz HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = extra.read_to_string(&mut out);
        assert_eq!(out, "", "over the cap: closed without an answer");
        // ... and once they are gone, probes are answered again.
        drop(held);
        let ok = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            get(ep.addr, "/healthz").contains(" 200 ")
        });
        assert!(ok, "/healthz answers after the silent connections left");
    }

    #[test]
    fn serves_metrics_health_and_readiness() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || metrics::counter!("nightjar_test_total").increment(3));
        let health = Arc::new(Health::default());
        let ep = Endpoint::start("127.0.0.1:0".parse().expect("addr"), handle, Arc::clone(&health), Api::default())
            .expect("bind");
        assert!(get(ep.addr, "/metrics").contains("nightjar_test_total 3"));
        assert!(
            get(ep.addr, "/healthz").starts_with("HTTP/1.0 200")
                || get(ep.addr, "/healthz").starts_with("HTTP/1.1 200")
        );
        assert!(get(ep.addr, "/readyz").contains(" 503 "));
        health.ready.store(true, Ordering::Relaxed);
        assert!(get(ep.addr, "/readyz").contains(" 200 "));
        assert!(get(ep.addr, "/nope").contains(" 404 "));
    }
}
