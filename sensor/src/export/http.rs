//! The sensor's own small HTTP endpoint (`--metrics-listen`): `/metrics` (Prometheus text
//! format, rendered from the installed recorder), `/healthz` (the process serves) and
//! `/readyz` (capture is attached and the workers run; 503 before and after). One thread,
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

/// A running endpoint; dropping it stops the thread.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Binds `addr` and serves until dropped.
    pub fn start(addr: SocketAddr, metrics: PrometheusHandle, health: Arc<Health>) -> std::io::Result<Self> {
        let server = Arc::new(tiny_http::Server::http(addr).map_err(std::io::Error::other)?);
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new().name("nightjar-http".into()).spawn(move || {
            for req in srv.incoming_requests() {
                let (code, body, ctype) = match req.url() {
                    "/metrics" => (200, metrics.render(), "text/plain; version=0.0.4"),
                    "/healthz" => (200, "ok\n".to_owned(), "text/plain"),
                    "/readyz" if health.ready.load(Ordering::Relaxed) => (200, "ready\n".to_owned(), "text/plain"),
                    "/readyz" => (503, "not ready\n".to_owned(), "text/plain"),
                    _ => (404, "not found\n".to_owned(), "text/plain"),
                };
                let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
                    resp = resp.with_header(h);
                }
                // A client that went away is not our problem.
                let _ = req.respond(resp);
            }
        })?;
        Ok(Self { server, thread: Some(thread), addr: bound })
    }
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
    fn serves_metrics_health_and_readiness() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || metrics::counter!("nightjar_test_total").increment(3));
        let health = Arc::new(Health::default());
        let ep = Endpoint::start("127.0.0.1:0".parse().expect("addr"), handle, Arc::clone(&health)).expect("bind");
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
