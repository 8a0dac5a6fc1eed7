//! The `nightjar` binary: parses the command line, loads the configuration, and runs a
//! pipeline. `anyhow` lives here only; the library has typed errors.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use nightjar::config::Config;
use nightjar::control::Control;
use nightjar::export::eve::EveTypes;
#[cfg(feature = "kafka")]
use nightjar::export::lines::Tee;
use nightjar::export::lines::{LineSink, WriteSink};
use nightjar::runtime::summary::{LiveParts, RunSummary};
use nightjar::runtime::{Attach, Sinks, replay};

/// Embedded sample captures for `nightjar demo` (FoxIO and Salesforce test vectors,
/// BSD-3-Clause; see sensor/tests/data/README.md).
const DEMO_CAPTURES: [(&str, &[u8]); 5] = [
    ("browsers-x509.pcapng", include_bytes!("../tests/data/browsers-x509.pcapng")),
    ("http1-with-cookies.pcapng", include_bytes!("../tests/data/http1-with-cookies.pcapng")),
    ("ssl-curl.pcap", include_bytes!("../tests/data/ssl-curl.pcap")),
    ("tls12.pcap", include_bytes!("../tests/data/tls12.pcap")),
    ("demo-threats.pcap", include_bytes!("../tests/data/generated/demo-threats.pcap")),
];
/// The generated threats' labels (nightjar-flood's CSV): the demo's truth column.
const DEMO_LABELS: &str = include_str!("../tests/data/generated/demo-threats.csv");

#[derive(Parser)]
#[command(
    name = "nightjar",
    version,
    about = "Network security sensor: TLS/HTTP flow fingerprints, features and verdicts"
)]
struct Cli {
    /// Configuration file (TOML). Every field has a default.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Load and validate the configuration, print it with defaults filled in, and exit
    /// (0 when valid).
    #[arg(long)]
    check_config: bool,
    /// Model metadata file (`nightjar.json`, ONNX files beside it), or `none` to run
    /// without a classifier. Default: the model embedded in the binary.
    #[arg(long, global = true)]
    model: Option<String>,
    /// Model variant: `float` or `int8` (default: the one the metadata names).
    #[arg(long, global = true)]
    model_variant: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Replay pcap/pcapng files through the pipeline and write one JSON event per flow.
    Replay(ReplayArgs),
    /// Replay the embedded sample captures (a demo that needs nothing else).
    /// Replay the embedded sample captures and print what was decided, one line per flow.
    Demo {
        /// Also keep the events (one JSON line per flow) in this file.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Keep the live page, metrics and health up after the replay (until Ctrl-C) on
        /// this address, and print its URL.
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:9640")]
        serve: Option<std::net::SocketAddr>,
    },
    /// Capture live on an interface: XDP pre-filter, one AF_XDP socket and one pinned
    /// worker per RX queue. Needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW (or root).
    Run(RunArgs),
    /// Print the feature schema that `model/` reads (model/feature_schema.json).
    Schema {
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Interface to capture on.
    #[arg(long)]
    iface: String,
    /// RX queues, comma-separated (one AF_XDP socket and worker each).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    queues: Vec<u32>,
    /// `span`: a mirror port (selected packets to AF_XDP, the rest dropped);
    /// `host`: a host that serves traffic (every packet passes).
    #[arg(long, value_enum, default_value_t = ModeArg::Span)]
    mode: ModeArg,
    /// `auto`: XDP, falling back to AF_PACKET when XDP is unavailable; `xdp`: XDP only;
    /// `afpacket`: AF_PACKET only (no pre-filter).
    #[arg(long, value_enum, default_value_t = CaptureArg::Auto)]
    capture: CaptureArg,
    /// Write events to this file instead of stdout ("-" is stdout).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Write feature vectors to this file.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Write the end-of-run summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint (`/metrics`), health, the live page and
    /// the learning API.
    #[arg(long, default_value = "127.0.0.1:9640")]
    metrics_listen: std::net::SocketAddr,
    /// Also send every event to Kafka: `brokers=HOST:PORT[,HOST:PORT],topic=NAME`
    /// [`,eve_topic=NAME,compression=lz4,queue=100000,message_timeout_ms=60000,flush_timeout_ms=10000`];
    /// with `eve_topic` the EVE records (`--eve-types`) go to that topic too.
    #[arg(long)]
    kafka: Option<String>,
    #[command(flatten)]
    eve: EveArgs,
}

/// Suricata EVE output.
#[derive(clap::Args)]
struct EveArgs {
    /// Also write Suricata EVE records (JSON lines) to this file ("-" is stdout): an
    /// `alert` for every verdict that is not benign, and the records of `--eve-types`.
    #[arg(long)]
    eve: Option<PathBuf>,
    /// EVE record types: comma-separated `alert`, `tls`, `http`, `flow`, or `all`.
    #[arg(long, default_value = "alert", value_parser = parse_eve_types)]
    eve_types: EveTypes,
}

fn parse_eve_types(s: &str) -> Result<EveTypes, String> {
    s.parse()
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CaptureArg {
    Auto,
    Xdp,
    Afpacket,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Span,
    Host,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Capture files, read in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write events to this file instead of stdout ("-" is stdout).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Write feature vectors (JSON lines with flow ids) to this file.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Do not write events (only the summary, and features if asked).
    #[arg(long)]
    no_events: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Serve Prometheus metrics (`/metrics`, `/healthz`, `/readyz`) on this address; the
    /// counters are published when the replay ends.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// With --metrics-listen: keep serving this many seconds after the replay (for a scrape).
    #[arg(long, default_value_t = 0)]
    linger_secs: u64,
    /// Prequential online learning: a labels CSV (`client_ip,client_port,server_ip,
    /// server_port,class`, optional `source`); each label is learned right after its flow
    /// is scored, in capture order, so every verdict written predates its own label. One
    /// worker.
    #[arg(long)]
    feedback: Option<PathBuf>,
    /// Directory of the learner's checkpoints (overrides `learning.state_dir`): the
    /// learned head is resumed from it and, with --feedback, saved to it.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Write the summary (counters and learning outcome) as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Also send every event to Kafka: `brokers=HOST:PORT[,HOST:PORT],topic=NAME`
    /// [`,eve_topic=NAME,compression=lz4,queue=100000,message_timeout_ms=60000,flush_timeout_ms=10000`];
    /// with `eve_topic` the EVE records (`--eve-types`) go to that topic too.
    #[arg(long)]
    kafka: Option<String>,
    #[command(flatten)]
    eve: EveArgs,
    /// The demo's: called when the replay is done, before lingering, with the address
    /// the endpoint serves on (if any).
    #[arg(skip)]
    on_done: Option<Box<dyn Fn(Option<std::net::SocketAddr>)>>,
    /// The demo's `--serve`: linger until SIGINT or SIGTERM.
    #[arg(skip)]
    serve_until_signal: bool,
}

/// Installs the Prometheus recorder (with the histogram buckets) and serves it.
/// Installs the Prometheus recorder (with the histogram buckets). Before anything that
/// publishes a metric.
fn install_recorder() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::Matcher;
    use nightjar::export::metrics as m;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::INFERENCE_SECONDS.into()), m::INFERENCE_SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::INFERENCE_BATCH.into()), m::INFERENCE_BATCH_BUCKETS))
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    m::describe();
    Ok(handle)
}

/// Serves the installed recorder, health and the learning API.
fn serve_metrics(
    listen: std::net::SocketAddr,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    api: nightjar::control::endpoint::Api,
) -> Result<(nightjar::control::endpoint::Endpoint, std::sync::Arc<nightjar::control::endpoint::Health>)> {
    let health = std::sync::Arc::new(nightjar::control::endpoint::Health::default());
    let endpoint = nightjar::control::endpoint::Endpoint::start(listen, handle, std::sync::Arc::clone(&health), api)
        .with_context(|| format!("cannot serve metrics on {listen}"))?;
    Ok((endpoint, health))
}

/// The model slot and learner (none without a model); SIGHUP asks for a model reload.
fn start_control(cfg: &Config) -> Result<Option<Control>> {
    let control = Control::start(cfg)?;
    if let Some(c) = &control {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, std::sync::Arc::clone(&c.reload))
            .context("installing the SIGHUP handler")?;
    }
    Ok(control)
}

/// The learning API of `control`: tokens of the configured sources.
fn api_of(cfg: &Config, control: Option<&Control>) -> nightjar::control::endpoint::Api {
    nightjar::control::endpoint::Api {
        learn: control.and_then(Control::learner_tx),
        tokens: cfg
            .learning
            .sources
            .iter()
            .filter_map(|(name, s)| s.token.clone().map(|t| (t, name.clone())))
            .collect(),
        reload: control.map(|c| std::sync::Arc::clone(&c.reload)),
        history: control.map(|c| std::sync::Arc::clone(&c.history)),
    }
}

/// The Kafka producer of `--kafka`, if given.
#[cfg(feature = "kafka")]
type KafkaHandle = std::sync::Arc<nightjar::export::kafka::KafkaSink>;
#[cfg(not(feature = "kafka"))]
type KafkaHandle = ();

#[cfg(feature = "kafka")]
fn kafka_sink(arg: Option<&str>) -> Result<Option<KafkaHandle>> {
    let Some(arg) = arg else { return Ok(None) };
    let o: nightjar::export::kafka::KafkaOptions = arg.parse().map_err(|e: String| anyhow::anyhow!("--kafka: {e}"))?;
    Ok(Some(std::sync::Arc::new(nightjar::export::kafka::KafkaSink::new(&o)?)))
}

#[cfg(not(feature = "kafka"))]
fn kafka_sink(arg: Option<&str>) -> Result<Option<KafkaHandle>> {
    if arg.is_some() {
        anyhow::bail!("this build has no Kafka export (cargo feature `kafka`)");
    }
    Ok(None)
}

/// The events writer: the file (or stdout) unless `file` is `None`, and Kafka.
#[cfg_attr(not(feature = "kafka"), expect(clippy::needless_pass_by_value, reason = "same signature"))]
fn events_sink(file: Option<Box<dyn LineSink>>, kafka: Option<KafkaHandle>) -> Option<Box<dyn LineSink>> {
    #[cfg(feature = "kafka")]
    if let Some(k) = kafka {
        let kw = Box::new(nightjar::export::kafka::KafkaWriter::new(k));
        return Some(match file {
            Some(f) => Box::new(Tee(f, kw)),
            None => kw,
        });
    }
    let _ = kafka;
    file
}

/// The EVE writer: the `--eve` file, and Kafka's `eve_topic`.
#[cfg_attr(not(feature = "kafka"), expect(clippy::needless_pass_by_value, reason = "same signature"))]
fn eve_sink(args: &EveArgs, kafka: Option<KafkaHandle>) -> Result<Option<(Box<dyn LineSink>, EveTypes)>> {
    let file = args.eve.as_deref().map(|p| open_sink(Some(p))).transpose()?;
    #[cfg(feature = "kafka")]
    if let Some(kw) = kafka.and_then(nightjar::export::kafka::KafkaWriter::eve) {
        let kw: Box<dyn LineSink> = Box::new(kw);
        let w: Box<dyn LineSink> = match file {
            Some(f) => Box::new(Tee(f, kw)),
            None => kw,
        };
        return Ok(Some((w, args.eve_types)));
    }
    let _ = kafka;
    Ok(file.map(|f| (f, args.eve_types)))
}

/// Delivery counters of the Kafka export, for summaries.
#[cfg(feature = "kafka")]
fn kafka_summary(k: Option<&KafkaHandle>) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    k.map_or(serde_json::Value::Null, |k| {
        serde_json::json!({
            "delivered": k.counts.delivered.load(Relaxed),
            "failed": k.counts.failed.load(Relaxed),
            "dropped": k.counts.dropped.load(Relaxed),
            "unsent_at_exit": k.counts.unsent.load(Relaxed),
        })
    })
}

#[cfg(not(feature = "kafka"))]
fn kafka_summary(_: Option<&KafkaHandle>) -> serde_json::Value {
    serde_json::Value::Null
}

/// A sink of lines into `path` (stdout for none or `-`).
fn open_sink(path: Option<&Path>) -> Result<Box<dyn LineSink>> {
    Ok(Box::new(WriteSink(open_out(path)?)))
}

fn open_out(path: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    match path {
        None => Ok(Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout()))),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout()))),
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

/// After a replay with an endpoint: keeps serving `--linger-secs` (or, for `demo --serve`,
/// until a signal) while still answering the control plane: a reload asked for now runs.
fn linger(args: &ReplayArgs, stop: &std::sync::atomic::AtomicBool, control: Option<&Control>) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(args.linger_secs);
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    while if args.serve_until_signal { !stopped() } else { std::time::Instant::now() < until && !stopped() } {
        if let Some(c) = control {
            c.poll();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The replay's sinks: events (unless `--no-events`), feature lines, EVE records, Kafka.
fn replay_sinks(args: &ReplayArgs, kafka: Option<&KafkaHandle>) -> Result<Sinks> {
    Ok(Sinks {
        events: events_sink(
            if args.no_events { None } else { Some(open_sink(args.events.as_deref())?) },
            kafka.cloned(),
        ),
        features: args.features.as_deref().map(|p| open_sink(Some(p))).transpose()?,
        eve: eve_sink(&args.eve, kafka.cloned())?,
    })
}

fn run_replay(cfg: &mut Config, args: &ReplayArgs) -> Result<ExitCode> {
    if let Some(w) = args.workers {
        cfg.runtime.workers = w;
    }
    let kafka = kafka_sink(args.kafka.as_deref())?;
    let sinks = replay_sinks(args, kafka.as_ref())?;
    let total: u64 = args.files.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} replay [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    };
    if let Some(d) = &args.state_dir {
        cfg.learning.state_dir = Some(d.clone());
    }
    // Prequential replay runs its own learner; otherwise the model slot and learner of a
    // running sensor (SIGHUP swaps the model, the API takes feedback).
    let handle = args.metrics_listen.map(|_| install_recorder()).transpose()?;
    let control = if args.feedback.is_none() { start_control(cfg)? } else { None };
    let endpoint = match (args.metrics_listen, handle) {
        (Some(addr), Some(handle)) => {
            let (e, health) = serve_metrics(addr, handle, api_of(cfg, control.as_ref()))?;
            health.ready.store(true, std::sync::atomic::Ordering::Relaxed);
            Some((e, health))
        }
        _ => None,
    };
    // SIGINT/SIGTERM: stop reading, end and write every flow, print the summary; a second
    // signal exits at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, std::sync::Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, std::sync::Arc::clone(&stop)))
            .context("installing signal handlers")?;
    }
    let summary = replay(
        cfg,
        &args.files,
        sinks,
        args.feedback.as_deref(),
        control.as_ref().map(|c| c as &dyn Attach),
        Some(&stop),
        &mut |pos, _| {
            bar.set_position(pos);
        },
    )?;
    bar.finish_and_clear();
    if let Some((_, health)) = &endpoint {
        // Ready means "reading traffic": a finished replay is not.
        health.ready.store(false, std::sync::atomic::Ordering::Relaxed);
        nightjar::export::metrics::StatsPublisher::new(0).publish(
            &summary.stats,
            0,
            nightjar::capture::KernelDrops::default(),
        );
    }
    if let Some(done) = &args.on_done {
        done(endpoint.as_ref().map(|(e, _)| e.addr));
    }
    if endpoint.is_some() {
        linger(args, &stop, control.as_ref());
    }
    if let Some(c) = control {
        c.finish();
    }
    let report = RunSummary {
        mode: "replay",
        stats: &summary.stats,
        elapsed: summary.elapsed,
        workers: summary.workers,
        file_errors: &summary.file_errors,
        interrupted: summary.interrupted,
        learning: summary.learning.as_ref(),
        live: None,
        kafka: kafka_summary(kafka.as_ref()),
    };
    if !args.quiet {
        eprint!("{report}");
    }
    if let Some(p) = &args.summary_json {
        let j = serde_json::to_string(&report).context("cannot serialise the summary")?;
        std::fs::write(p, j).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if summary.interrupted && !args.serve_until_signal {
        eprintln!("interrupted: stopped reading on a signal; every flow read so far was ended and written");
        Ok(ExitCode::from(130))
    } else if summary.file_errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &summary.file_errors {
            eprintln!("error: {e}");
        }
        Ok(ExitCode::from(2))
    }
}

fn run_live(cfg: &Config, args: &RunArgs) -> Result<ExitCode> {
    use nightjar::runtime::live::{CapturePath, LiveOptions, Mode, run};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    if let Some(secs) = args.duration_secs {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
        });
    }
    // Load (and refuse a bad) model before touching the interface.
    let handle = install_recorder()?;
    let control = start_control(cfg)?;
    let (_endpoint, health) = serve_metrics(args.metrics_listen, handle, api_of(cfg, control.as_ref()))?;
    let kafka = kafka_sink(args.kafka.as_deref())?;
    let sinks = Sinks {
        events: events_sink(Some(open_sink(args.events.as_deref())?), kafka.clone()),
        features: args.features.as_deref().map(|p| open_sink(Some(p))).transpose()?,
        eve: eve_sink(&args.eve, kafka.clone())?,
    };
    let mode = match args.mode {
        ModeArg::Span => Mode::Span,
        ModeArg::Host => Mode::Host,
    };
    let path = match args.capture {
        CaptureArg::Auto => CapturePath::Auto,
        CaptureArg::Xdp => CapturePath::Xdp,
        CaptureArg::Afpacket => CapturePath::AfPacket,
    };
    let opts = LiveOptions { iface: &args.iface, queues: &args.queues, mode, path };
    let s = run(cfg, opts, sinks, &stop, &health.ready, control.as_ref().map(|c| c as &dyn Attach))?;
    if let Some(c) = control {
        c.finish();
    }
    let report = RunSummary {
        mode: "run",
        stats: &s.stats,
        elapsed: s.elapsed,
        workers: s.workers,
        file_errors: &[],
        interrupted: false,
        learning: None,
        live: Some(LiveParts {
            attach: format!("{:?}", s.attach),
            xdp: nightjar_common::Counter::ALL.iter().map(|c| (c.as_str(), s.xdp[*c as usize])).collect(),
            xsk: s.xsk,
            output_dropped: s.output_dropped,
            iface: &args.iface,
        }),
        kafka: kafka_summary(kafka.as_ref()),
    };
    eprint!("{report}");
    if let Some(p) = &args.summary_json {
        let j = serde_json::to_string(&report).context("cannot serialise the summary")?;
        std::fs::write(p, j).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_demo(cfg: &mut Config, events: Option<&Path>, serve: Option<std::net::SocketAddr>) -> Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut files = Vec::new();
    for (name, bytes) in DEMO_CAPTURES {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        files.push(p);
    }
    eprintln!(
        "Replaying {} embedded sample captures: real benign TLS 1.2/1.3 browsers, curl and HTTP/1.1, and generated attacks and malware.",
        files.len()
    );
    let events_path = events.map_or_else(|| dir.path().join("events.jsonl"), Path::to_path_buf);
    let args = ReplayArgs {
        files,
        events: Some(events_path.clone()),
        features: None,
        no_events: false,
        workers: None,
        quiet: true,
        metrics_listen: serve,
        linger_secs: 0,
        feedback: None,
        state_dir: None,
        summary_json: None,
        kafka: None,
        eve: EveArgs { eve: None, eve_types: EveTypes::default() },
        on_done: None,
        serve_until_signal: serve.is_some(),
    };
    let kept = events.map(Path::to_path_buf);
    let shown = events_path.clone();
    let on_done = move |bound: Option<std::net::SocketAddr>| match std::fs::read_to_string(&shown) {
        Ok(text) => {
            print!("{}", demo_table(&text, kept.as_deref()));
            if let Some(addr) = bound {
                println!("  the live page of this run: http://{addr}/ (metrics: http://{addr}/metrics); Ctrl-C stops");
            }
            let _ = std::io::stdout().flush();
        }
        Err(e) => eprintln!("error: cannot read the demo's events {}: {e}", shown.display()),
    };
    let args = ReplayArgs { on_done: Some(Box::new(on_done)), ..args };
    run_replay(cfg, &args)
}

/// What the demo knows of a flow: real benign (the bundled real captures) or the
/// generated label (class/family) of nightjar-flood's CSV.
fn demo_truth(labels: &str) -> std::collections::HashMap<(String, String, String, String), String> {
    labels
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c.len() >= 7)
                .then(|| ((c[0].into(), c[1].into(), c[2].into(), c[3].into()), format!("{}/{} (gen)", c[5], c[6])))
        })
        .collect()
}

/// The demo's story: one line per flow (app, client, server, SNI or request line, verdict,
/// score, the main reason, and what the flow really is), the counts per class, how the
/// verdicts compare with the truth, and where to look next.
fn demo_table(events: &str, kept: Option<&Path>) -> String {
    use std::fmt::Write;
    let truth = demo_truth(DEMO_LABELS);
    let rows: Vec<serde_json::Value> = events.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let field = |e: &serde_json::Value, path: &[&str]| -> String {
        let mut v = e;
        for k in path {
            v = match k.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[*k],
            };
        }
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let cut =
        |s: String, n: usize| if s.chars().count() > n { s.chars().take(n - 1).collect::<String>() + "…" } else { s };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<5} {:<38} {:<36} {:<8} {:>6}  {:<30} why (top reason)",
        "app", "client -> server", "SNI / request", "verdict", "score", "truth"
    );
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut model = String::new();
    // (flows, right) for the real benign flows; (flows, flagged, named) for generated threats.
    let (mut real, mut real_right) = (0, 0);
    let (mut threats, mut flagged, mut named) = (0, 0, 0);
    for e in &rows {
        let app = field(e, &["app"]);
        let what = match app.as_str() {
            "tls" => {
                let sni = field(e, &["tls", "sni"]);
                if sni.is_empty() { "(no SNI)".to_owned() } else { sni }
            }
            "http" => format!("{} {}", field(e, &["http", "method"]), field(e, &["http", "uri"])),
            _ => String::new(),
        };
        let key = (field(e, &["src_ip"]), field(e, &["src_port"]), field(e, &["dest_ip"]), field(e, &["dest_port"]));
        let ends = format!("{}:{} -> {}:{}", key.0, key.1, key.2, key.3);
        let class = field(e, &["verdict", "class"]);
        let score = e["verdict"]["score"].as_f64().map_or_else(|| "-".to_owned(), |s| format!("{s:.3}"));
        let why = field(e, &["verdict", "reasons", "0", "label"]);
        if model.is_empty() {
            model = field(e, &["verdict", "model"]);
        }
        *counts.entry(class.clone()).or_default() += 1;
        let truth = if let Some(t) = truth.get(&key) {
            threats += 1;
            flagged += usize::from(class != "benign");
            named += usize::from(t.starts_with(&format!("{class}/")));
            t.clone()
        } else {
            real += 1;
            real_right += usize::from(class == "benign");
            "benign (real)".to_owned()
        };
        let _ = writeln!(
            out,
            "{app:<5} {:<38} {:<36} {class:<8} {score:>6}  {:<30} {}",
            cut(ends, 38),
            cut(what, 36),
            cut(truth, 30),
            cut(why, 40)
        );
    }
    let per: Vec<String> = ["benign", "attack", "malware", "unknown"]
        .iter()
        .map(|c| format!("{c} {}", counts.get(*c).unwrap_or(&0)))
        .collect();
    let _ = writeln!(
        out,
        "\n{} flows: {}. Model {}.",
        rows.len(),
        per.join(", "),
        if model.is_empty() { "none (--model none)" } else { &model }
    );
    let _ = writeln!(
        out,
        "Real benign flows (browsers, curl; sensor/tests/data/README.md): {real_right} of {real} called benign."
    );
    let _ = writeln!(
        out,
        "Generated threats (nightjar-flood, benches/flood/scenarios/demo.toml): {flagged} of {threats} flagged \
         (attack, malware or unknown), {named} named by their class. Generated traffic says little about real \
         traffic: model/README.md has the real-traffic figures."
    );
    out.push_str(&demo_next(kept));
    out
}

/// Where the demo's reader looks next.
fn demo_next(kept: Option<&Path>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Next:");
    match kept {
        Some(p) => {
            let _ = writeln!(
                out,
                "  the full events (one JSON line per flow, fields in README \"Flow events\"): {}",
                p.display()
            );
        }
        None => {
            let _ = writeln!(out, "  the full events (one JSON line per flow): nightjar demo --events events.jsonl");
        }
    }
    let _ = writeln!(out, "  your own capture: nightjar replay --events events.jsonl --eve eve.json capture.pcap");
    let _ = writeln!(out, "  keep the live page of the run up: nightjar demo --serve [ADDR] (default 127.0.0.1:9640)");
    let _ = writeln!(out, "  live capture, metrics and Grafana: README \"Live capture\" and \"Metrics\"");
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = (|| -> Result<ExitCode> {
        let mut cfg = load_config(cli.config.as_deref())?;
        match cli.model.as_deref() {
            Some("none") => cfg.model.enabled = false,
            Some(p) => cfg.model.path = Some(PathBuf::from(p)),
            None => {}
        }
        if let Some(v) = &cli.model_variant {
            cfg.model.variant = Some(v.clone());
        }
        cfg.validate()?;
        if cli.check_config {
            let text = toml::to_string(&cfg).context("cannot print the configuration")?;
            println!("{text}");
            eprintln!(
                "Configuration valid: {}.",
                cli.config.as_deref().map_or_else(|| "defaults".into(), |p| p.display().to_string())
            );
            return Ok(ExitCode::SUCCESS);
        }
        let Some(command) = &cli.command else {
            anyhow::bail!("no command given; see `nightjar --help`");
        };
        match command {
            Command::Replay(args) => run_replay(&mut cfg, args),
            Command::Demo { events, serve } => run_demo(&mut cfg, events.as_deref(), *serve),
            Command::Run(args) => run_live(&cfg, args),
            Command::Schema { output } => {
                let mut out = open_out(output.as_deref())?;
                out.write_all(nightjar::features::schema_json().as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })();
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
