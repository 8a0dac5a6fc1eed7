//! Runs the planned flows: the server side on one thread in the server namespace, the
//! client side on one thread in the client namespace, each a single-threaded tokio runtime
//! (one core each on the two-core reference machine). The server learns which profile and
//! sizes a connection needs from the shared plan registry, keyed by the client's address
//! and port, which the client registers before it connects.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};

use crate::config::{Catalogue, Class};
use crate::netns;
use crate::plan::FlowPlan;
use crate::tls::{self, Io, TlsContexts};

/// How a flow ended, from the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every exchange done.
    Ok,
    /// TCP connect failed or timed out.
    ConnectError,
    /// The TLS handshake failed (e.g. no common version or suite: scanners meet this often).
    HandshakeError,
    /// Reading or writing application data failed.
    IoError,
    /// The flow took longer than the limit.
    Timeout,
}

impl Outcome {
    /// CSV word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectError => "connect_error",
            Outcome::HandshakeError => "handshake_error",
            Outcome::IoError => "io_error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// One row of the labels file.
#[derive(Clone, Debug)]
pub struct LabelRow {
    /// Client address and port.
    pub client: SocketAddrV4,
    /// Server address and port.
    pub server: SocketAddrV4,
    /// Seconds since the epoch when the client opened the connection.
    pub start_ts: f64,
    /// Label.
    pub class: Class,
    /// Family name.
    pub family: String,
    /// TLS client profile, empty for plaintext.
    pub profile: String,
    /// TLS server profile, empty for plaintext.
    pub server_profile: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Counters of a run.
#[derive(Default)]
pub struct Counters {
    /// Flows finished, per class (benign, attack, malware).
    pub flows: [AtomicU64; 3],
    /// Application bytes client -> server.
    pub bytes_up: AtomicU64,
    /// Application bytes server -> client.
    pub bytes_down: AtomicU64,
    /// Client-side errors by outcome (connect, handshake, io, timeout).
    pub errors: [AtomicU64; 4],
    /// Server-side handshake failures.
    pub server_handshake_errors: AtomicU64,
    /// Connections the server could not match to a plan.
    pub server_unplanned: AtomicU64,
    /// Flows that started later than planned because `max_concurrent` were in progress.
    pub late_starts: AtomicU64,
}

type Registry = Arc<Mutex<HashMap<SocketAddrV4, Arc<FlowPlan>>>>;

/// Longest a single flow may take.
const FLOW_LIMIT: Duration = Duration::from_secs(180);

fn class_index(c: Class) -> usize {
    match c {
        Class::Benign => 0,
        Class::Attack => 1,
        Class::Malware => 2,
    }
}

async fn serve_conn(tcp: TcpStream, plan: Arc<FlowPlan>, tls: Arc<TlsContexts>, counters: Arc<Counters>) {
    let mut io: Box<dyn Io> = match &plan.server_profile {
        Some(name) => {
            let Ok(s) = tls::accept(&tls.servers[name], tcp).await else {
                counters.server_handshake_errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            s
        }
        None => Box::new(tcp),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let chunk_src = vec![b'x'; 64 * 1024];
    for ex in &plan.exchanges {
        let first = ex.request.len().min(buf.len());
        if io.read_exact(&mut buf[..first]).await.is_err() {
            return;
        }
        let mut left = ex.request.len().saturating_sub(buf.len());
        while left > 0 {
            let n = left.min(buf.len());
            if io.read_exact(&mut buf[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
        let chunks = u32::from(ex.chunks.max(1));
        for c in 0..chunks {
            if c > 0 && ex.chunk_gap_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(ex.chunk_gap_ms))).await;
            }
            let mut part = ex.response / chunks + u32::from(c < ex.response % chunks);
            while part > 0 {
                let n = (part as usize).min(chunk_src.len());
                if io.write_all(&chunk_src[..n]).await.is_err() {
                    return;
                }
                part -= n as u32;
            }
            if io.flush().await.is_err() {
                return;
            }
        }
    }
    // Wait for the client to close, then close our side.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let _ = io.shutdown().await;
}

/// Runs the server side until `stop` is notified.
fn server_thread(
    ns: &str,
    ports: Vec<u16>,
    registry: Registry,
    tls: Arc<TlsContexts>,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) -> Result<()> {
    let setup = netns::enter(ns)
        .and_then(|()| tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime"));
    let rt = match setup {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut listeners = Vec::new();
        for port in ports {
            let sock = TcpSocket::new_v4()?;
            sock.set_reuseaddr(true)?;
            sock.bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
            listeners.push(sock.listen(8192).with_context(|| format!("listening on port {port}"))?);
        }
        let _ = ready.send(Ok(()));
        let mut tasks = tokio::task::JoinSet::new();
        for l in listeners {
            let (registry, tls, counters) = (registry.clone(), tls.clone(), counters.clone());
            tasks.spawn_local(async move {
                loop {
                    let Ok((tcp, peer)) = l.accept().await else { continue };
                    let SocketAddr::V4(peer) = peer else { continue };
                    let plan = registry.lock().map(|mut r| r.remove(&peer)).ok().flatten();
                    let Some(plan) = plan else {
                        counters.server_unplanned.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    tokio::task::spawn_local(serve_conn(tcp, plan, tls.clone(), counters.clone()));
                }
            });
        }
        stop.notified().await;
        tasks.abort_all();
        Ok::<(), anyhow::Error>(())
    })
}

async fn client_flow(plan: Arc<FlowPlan>, tls: Arc<TlsContexts>, counters: Arc<Counters>) -> (f64, Outcome) {
    let start_ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let run = async {
        let sock = TcpSocket::new_v4().map_err(|_| Outcome::ConnectError)?;
        sock.set_reuseaddr(true).map_err(|_| Outcome::ConnectError)?;
        sock.bind(SocketAddr::V4(plan.client)).map_err(|_| Outcome::ConnectError)?;
        let tcp = tokio::time::timeout(Duration::from_secs(15), sock.connect(SocketAddr::V4(plan.server)))
            .await
            .map_err(|_| Outcome::ConnectError)?
            .map_err(|_| Outcome::ConnectError)?;
        let _ = tcp.set_nodelay(true);
        let mut io: Box<dyn Io> = match &plan.client_profile {
            Some(name) => {
                tls::connect(&tls.clients[name], &plan.host, tcp).await.map_err(|_| Outcome::HandshakeError)?
            }
            None => Box::new(tcp),
        };
        let mut buf = vec![0u8; 64 * 1024];
        for ex in &plan.exchanges {
            if ex.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(ex.delay_ms))).await;
            }
            io.write_all(&ex.request).await.map_err(|_| Outcome::IoError)?;
            io.flush().await.map_err(|_| Outcome::IoError)?;
            counters.bytes_up.fetch_add(ex.request.len() as u64, Ordering::Relaxed);
            let mut left = ex.response as usize;
            while left > 0 {
                let n = io.read(&mut buf[..left.min(64 * 1024)]).await.map_err(|_| Outcome::IoError)?;
                if n == 0 {
                    return Err(Outcome::IoError);
                }
                left -= n;
            }
            counters.bytes_down.fetch_add(u64::from(ex.response), Ordering::Relaxed);
        }
        let _ = io.shutdown().await;
        // Read the server's FIN (or close_notify) so both directions close cleanly.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
        Ok::<(), Outcome>(())
    };
    let outcome = match tokio::time::timeout(FLOW_LIMIT, run).await {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(o)) => o,
        Err(_) => Outcome::Timeout,
    };
    (start_ts, outcome)
}

/// Runs the client side: starts every flow at its planned offset (later when
/// `max_concurrent` flows are in progress) and returns the label rows.
#[expect(clippy::too_many_arguments, reason = "a thread entry point: everything it owns is moved in")]
fn client_thread(
    ns: &str,
    plans: Vec<Arc<FlowPlan>>,
    cat: Arc<Catalogue>,
    max_concurrent: usize,
    registry: Registry,
    tls: Arc<TlsContexts>,
    counters: Arc<Counters>,
    bar: ProgressBar,
) -> Result<Vec<LabelRow>> {
    netns::enter(ns)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let rows = Arc::new(Mutex::new(Vec::with_capacity(plans.len())));
        let sem = Arc::new(Semaphore::new(max_concurrent));
        let t0 = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let at = t0 + Duration::from_millis(plan.start_ms);
            tokio::time::sleep_until(at).await;
            let permit = sem.clone().acquire_owned().await.context("semaphore closed")?;
            if tokio::time::Instant::now() > at + Duration::from_millis(100) {
                counters.late_starts.fetch_add(1, Ordering::Relaxed);
            }
            registry.lock().map_err(|_| anyhow::anyhow!("registry poisoned"))?.insert(plan.client, plan.clone());
            let (tls, counters, rows, bar, cat) =
                (tls.clone(), counters.clone(), rows.clone(), bar.clone(), cat.clone());
            tasks.spawn_local(async move {
                let (start_ts, outcome) = client_flow(plan.clone(), tls, counters.clone()).await;
                drop(permit);
                counters.flows[class_index(plan.class)].fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Outcome::Ok => {}
                    Outcome::ConnectError => _ = counters.errors[0].fetch_add(1, Ordering::Relaxed),
                    Outcome::HandshakeError => _ = counters.errors[1].fetch_add(1, Ordering::Relaxed),
                    Outcome::IoError => _ = counters.errors[2].fetch_add(1, Ordering::Relaxed),
                    Outcome::Timeout => _ = counters.errors[3].fetch_add(1, Ordering::Relaxed),
                }
                bar.inc(1);
                let row = LabelRow {
                    client: plan.client,
                    server: plan.server,
                    start_ts,
                    class: plan.class,
                    family: cat.family[plan.family].name.clone(),
                    profile: plan.client_profile.clone().unwrap_or_default(),
                    server_profile: plan.server_profile.clone().unwrap_or_default(),
                    outcome,
                };
                if let Ok(mut r) = rows.lock() {
                    r.push(row);
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let rows = std::mem::take(&mut *rows.lock().map_err(|_| anyhow::anyhow!("rows poisoned"))?);
        Ok(rows)
    })
}

/// Everything a run needs.
pub struct RunInput {
    /// Catalogue.
    pub cat: Arc<Catalogue>,
    /// Planned flows in start order.
    pub plans: Vec<FlowPlan>,
    /// Scenario bound on flows in progress.
    pub max_concurrent: usize,
    /// Built TLS profiles.
    pub tls: Arc<TlsContexts>,
    /// Namespaces.
    pub client_ns: String,
    /// Namespaces.
    pub server_ns: String,
}

/// Runs every flow; returns the label rows sorted by start time.
pub fn run(input: RunInput, counters: &Arc<Counters>, bar: ProgressBar) -> Result<Vec<LabelRow>> {
    let mut ports: Vec<u16> = input.plans.iter().map(|p| p.server.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    let registry: Registry = Arc::default();
    let stop = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = {
        let (registry, tls, counters, stop, ns) =
            (registry.clone(), input.tls.clone(), counters.clone(), stop.clone(), input.server_ns.clone());
        std::thread::Builder::new()
            .name("flood-server".into())
            .spawn(move || server_thread(&ns, ports, registry, tls, counters, stop, ready_tx))?
    };
    ready_rx.recv().context("server thread ended")??;
    let plans: Vec<Arc<FlowPlan>> = input.plans.into_iter().map(Arc::new).collect();
    let client = {
        let (registry, tls, counters, ns, cat) =
            (registry.clone(), input.tls.clone(), counters.clone(), input.client_ns.clone(), input.cat.clone());
        let max = input.max_concurrent;
        std::thread::Builder::new()
            .name("flood-client".into())
            .spawn(move || client_thread(&ns, plans, cat, max, registry, tls, counters, bar))?
    };
    let rows = client.join().map_err(|_| anyhow::anyhow!("client thread panicked"));
    // Let the last FIN/ACKs cross before the server stops.
    std::thread::sleep(Duration::from_millis(300));
    stop.notify_one();
    server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    let mut rows = rows??;
    rows.sort_by(|a, b| a.start_ts.total_cmp(&b.start_ts));
    Ok(rows)
}
