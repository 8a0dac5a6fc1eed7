//! The sensor's own small HTTP endpoint (`--metrics-listen`): `/metrics` (Prometheus text
//! format, rendered from the installed recorder), `/healthz` (the process serves) and
//! `/readyz` (capture is attached and the workers run; 503 before and after). With online
//! learning: `POST /feedback` and `POST /model/reload` (bearer token of a configured
//! source) and `GET /learning` (the learner's status). A thread per request (bounded),
//! blocking I/O; nothing here is on the packet path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

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
    pub history: Option<Arc<super::live::History>>,
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

impl Api {
    /// The source whose token the request carries.
    fn source(&self, req: &tiny_http::Request) -> Option<String> {
        let auth = req.headers().iter().find(|h| h.field.equiv("Authorization"))?;
        let token = auth.value.as_str().strip_prefix("Bearer ")?.trim();
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

    fn feedback(&self, req: &mut tiny_http::Request) -> Reply {
        let Some(tx) = &self.learn else { return error(503, "online learning is not running") };
        let Some(source) = self.source(req) else { return error(401, "missing or unknown bearer token") };
        let mut body = Vec::new();
        let read =
            std::io::Read::read_to_end(&mut std::io::Read::take(req.as_reader(), MAX_BODY as u64 + 1), &mut body);
        if read.is_err() {
            return error(400, "cannot read the request body");
        }
        if body.len() > MAX_BODY {
            return error(413, "body larger than 64 KiB");
        }
        let fb: FeedbackBody = match serde_json::from_slice(&body) {
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
        if tx.send_timeout(crate::learn::service::Msg::Feedback(req, rtx), std::time::Duration::from_secs(2)).is_err() {
            return error(503, "the learner is busy; retry");
        }
        match rrx.recv_timeout(std::time::Duration::from_secs(5)) {
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
        if tx.send_timeout(crate::learn::service::Msg::Status(rtx), std::time::Duration::from_secs(2)).is_err() {
            return error(503, "the learner is busy; retry");
        }
        match rrx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(st) => json_reply(200, &serde_json::to_value(st).unwrap_or_default()),
            Err(_) => error(503, "the learner did not answer; retry"),
        }
    }

    fn reload(&self, req: &tiny_http::Request) -> Reply {
        if self.source(req).is_none() {
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

/// A running endpoint; dropping it stops the thread.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Binds `addr` and serves until dropped. GETs that neither read a body nor wait
    /// (health, readiness, metrics, the live page) are answered on the accepting thread;
    /// the others (feedback, reload, learning status) each on a thread of its own. A
    /// client that sends its body slowly, or never, holds one thread of its own and delays
    /// no probe or scrape.
    pub fn start(addr: SocketAddr, metrics: PrometheusHandle, health: Arc<Health>, api: Api) -> std::io::Result<Self> {
        let server = Arc::new(tiny_http::Server::http(addr).map_err(std::io::Error::other)?);
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new().name("nightjar-http".into()).spawn(move || {
            for req in srv.incoming_requests() {
                // Requests without a body or a wait (health, readiness, metrics, the live
                // page) are answered here at once: nothing a client does can hold them up.
                let waits = *req.method() != tiny_http::Method::Get || req.url() == "/learning";
                if !waits {
                    handle(req, &metrics, &health, &api);
                    continue;
                }
                // The rest read a body or wait for the learner: a thread each (tiny_http
                // already holds one per connection, so this adds no new way to pile up
                // threads). A request is never answered or dropped here: dropping one
                // whose body was not read would read it, and block this loop.
                let (metrics, health, api) = (metrics.clone(), Arc::clone(&health), api.clone());
                let spawned = std::thread::Builder::new()
                    .name("nightjar-http-req".into())
                    .spawn(move || handle(req, &metrics, &health, &api));
                if spawned.is_err() {
                    // The system gives no more threads: the request was dropped here (tiny_http
                    // answers 500, which may wait for its body; nothing better is left), counted.
                    metrics::counter!(super::metrics::HTTP_REFUSED).increment(1);
                }
            }
        })?;
        Ok(Self { server, thread: Some(thread), addr: bound })
    }
}

fn respond(req: tiny_http::Request, (code, body, ctype): Reply) {
    let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
        resp = resp.with_header(h);
    }
    // A client that went away is not our problem.
    let _ = req.respond(resp);
}

/// Answers one request.
fn handle(mut req: tiny_http::Request, metrics: &PrometheusHandle, health: &Health, api: &Api) {
    let post = *req.method() == tiny_http::Method::Post;
    let reply = match (req.url(), post) {
        ("/" | "/index.html", false) => (200, super::live::PAGE.to_owned(), "text/html; charset=utf-8"),
        ("/assets/echarts.min.js", false) => {
            let mut resp = tiny_http::Response::from_data(super::live::ECHARTS);
            for (k, v) in [("Content-Type", "application/javascript"), ("Cache-Control", "max-age=86400")] {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    resp = resp.with_header(h);
                }
            }
            let _ = req.respond(resp);
            return;
        }
        ("/api/live", false) => match &api.history {
            Some(h) => (200, h.snapshot_json(), "application/json"),
            None => error(503, "no verdict history in this mode"),
        },
        ("/metrics", false) => (200, metrics.render(), "text/plain; version=0.0.4"),
        ("/healthz", false) => (200, "ok\n".to_owned(), "text/plain"),
        ("/readyz", false) if health.ready.load(Ordering::Relaxed) => (200, "ready\n".to_owned(), "text/plain"),
        ("/readyz", false) => (503, "not ready\n".to_owned(), "text/plain"),
        ("/feedback", true) => api.feedback(&mut req),
        ("/learning", false) => api.status(),
        ("/model/reload", true) => api.reload(&req),
        ("/feedback" | "/model/reload", false) | ("/metrics" | "/healthz" | "/readyz" | "/learning", true) => {
            (405, "method not allowed\n".to_owned(), "text/plain")
        }
        _ => (404, "not found\n".to_owned(), "text/plain"),
    };
    respond(req, reply);
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.unblock();
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

    #[test]
    fn a_client_that_never_sends_its_body_delays_no_probe() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let api = Api { learn: Some(tx), tokens: vec![("0123456789abcdef".into(), "api".into())], ..Api::default() };
        let ep = Endpoint::start("127.0.0.1:0".parse().expect("addr"), recorder.handle(), Arc::default(), api)
            .expect("bind");
        // Slow clients: a feedback POST that declares 60,000 bytes and sends none. (Three:
        // the issue was one; with dozens, tiny_http's own connection pool can leave a new
        // connection queued behind blocked ones, which only a server with timeouts fixes.)
        let mut slow = Vec::new();
        for _ in 0..3 {
            let mut s = std::net::TcpStream::connect(ep.addr).expect("connect");
            write!(
                s,
                "POST /feedback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Length: 60000\r\n\r\n"
            )
            .expect("send");
            slow.push(s);
        }
        // Health, readiness and metrics still answer (the reads would block forever if not).
        for path in ["/healthz", "/readyz", "/metrics", "/healthz"] {
            let mut s = std::net::TcpStream::connect(ep.addr).expect("connect");
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("answered while slow clients hang");
            assert!(out.starts_with("HTTP/1."), "{path}: {out}");
        }
        drop(slow);
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
