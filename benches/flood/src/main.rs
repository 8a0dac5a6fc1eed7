//! nightjar-flood: a labelled traffic generator. Real TLS (rustls, OpenSSL) and plaintext
//! HTTP flows of benign, attack and malware families run between two network namespaces
//! joined by a veth pair; the tool writes a pcap of the veth with a labels CSV beside it,
//! or mirrors the traffic onto a span port that `nightjar run --iface` watches.
//!
//! It is a tool of its own: the sensor never links it.

mod capture;
mod certs;
mod config;
mod http;
mod netns;
mod plan;
mod run;
mod tls;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Catalogue, Scenario};
use crate::run::{Counters, LabelRow};

/// The built-in profile catalogue (profiles, families, labels).
const CATALOGUE: &str = include_str!("../profiles.toml");

/// Labelled traffic generator for Nightjar (needs root: it creates network namespaces).
#[derive(Parser, Debug)]
#[command(name = "nightjar-flood", version)]
struct Cli {
    /// Scenario file (TOML): mix of families, flow count, rate, seed.
    #[arg(long)]
    scenario: PathBuf,
    /// Write the traffic, as captured on the client's veth, to this pcap.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Write one CSV row per flow: client_ip,client_port,server_ip,server_port,start_ts,class,family,profile,server_profile,outcome.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Drive live traffic instead: create this interface in the current namespace as a span
    /// port that receives a mirror of every frame (run `nightjar run --iface IF` on it).
    #[arg(long)]
    iface: Option<String>,
    /// With --iface: seconds to wait after creating the span port before the first flow
    /// (time for a sensor to attach).
    #[arg(long, default_value_t = 0.0)]
    iface_wait_secs: f64,
    /// Profile catalogue; default: the built-in benches/flood/profiles.toml.
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Shared data directory (payload lists, CSIC); default $NIGHTJAR_SHARED_DATA or ../shared/data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Override the scenario's flow count.
    #[arg(long)]
    flows: Option<u64>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the scenario's mean new flows per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Override the scenario's time scale (0 = no think times: as fast as possible).
    #[arg(long)]
    time_scale: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn data_dir(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("NIGHTJAR_SHARED_DATA") {
        return p.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

fn write_labels(path: &Path, rows: &[LabelRow]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    w.write_record([
        "client_ip",
        "client_port",
        "server_ip",
        "server_port",
        "start_ts",
        "class",
        "family",
        "profile",
        "server_profile",
        "outcome",
    ])?;
    for r in rows {
        w.write_record([
            r.client.ip().to_string(),
            r.client.port().to_string(),
            r.server.ip().to_string(),
            r.server.port().to_string(),
            format!("{:.6}", r.start_ts),
            r.class.as_str().to_owned(),
            r.family.clone(),
            r.profile.clone(),
            r.server_profile.clone(),
            r.outcome.as_str().to_owned(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[expect(clippy::too_many_lines, reason = "the run in order: load, plan, network, capture, flows, summary")]
fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.pcap.is_none() && cli.iface.is_none() {
        bail!("nothing to do: give --pcap OUT.pcap (with --labels OUT.csv) or --iface IF");
    }
    let cat = match &cli.catalogue {
        Some(p) => Catalogue::load(p)?,
        None => Catalogue::from_toml(CATALOGUE).context("built-in catalogue")?,
    };
    let mut scenario = Scenario::load(&cli.scenario, &cat)?;
    if let Some(n) = cli.flows {
        scenario.flows = n;
    }
    if let Some(s) = cli.seed {
        scenario.seed = s;
    }
    if let Some(r) = cli.rate {
        scenario.rate = r;
    }
    if let Some(t) = cli.time_scale {
        scenario.time_scale = t;
    }
    scenario.check(&cat)?;
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("nightjar-flood needs root: it creates network namespaces and veth pairs");
    }
    let data = data_dir(cli.data.as_deref());
    let families: BTreeSet<String> = scenario.mix.iter().map(|m| m.family.clone()).collect();
    let corpus = http::HttpCorpus::load(&cat, &data, &families, scenario.http_part)
        .with_context(|| format!("loading request sources from {}", data.display()))?;
    let plans = plan::draw(&cat, &scenario, &corpus)?;
    eprintln!("nightjar-flood: scenario {} (seed {}), {} flows planned", scenario.name, scenario.seed, plans.len());
    let certs = certs::CertStore::generate().context("generating certificates")?;
    let tls = Arc::new(tls::TlsContexts::build(&cat, &certs)?);
    let topo = netns::Topology::create(scenario.client_hosts, scenario.server_hosts, cli.iface.as_deref())?;
    // SIGINT/SIGTERM: remove the namespaces (and with them the veths) before leaving.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    let names = [topo.client_ns.clone(), topo.server_ns.clone()];
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            netns::remove(&names);
            eprintln!("nightjar-flood: stopped by signal {sig}; namespaces removed.");
            std::process::exit(128 + sig);
        }
    });
    let capture = match &cli.pcap {
        Some(p) => Some(capture::Capture::start(topo.client_ns.clone(), netns::CLIENT_IF, p.clone())?),
        None => None,
    };
    if cli.iface.is_some() && cli.iface_wait_secs > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(cli.iface_wait_secs));
    }
    let bar = if cli.quiet { ProgressBar::hidden() } else { ProgressBar::new(plans.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} flows {per_sec} eta {eta}")?
            .progress_chars("=> "),
    );
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let cat = Arc::new(cat);
    let input = run::RunInput {
        cat: cat.clone(),
        plans,
        max_concurrent: scenario.max_concurrent,
        tls,
        client_ns: topo.client_ns.clone(),
        server_ns: topo.server_ns.clone(),
    };
    let rows = run::run(input, &counters, bar.clone());
    bar.finish_and_clear();
    let cap_stats = match capture {
        Some(c) => Some(c.finish()?),
        None => None,
    };
    drop(topo);
    let rows = rows?;
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(p) = &cli.labels {
        write_labels(p, &rows)?;
    }
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "scenario": scenario.name,
        "seed": scenario.seed,
        "flows": rows.len(),
        "flows_per_class": { "benign": c(&counters.flows[0]), "attack": c(&counters.flows[1]), "malware": c(&counters.flows[2]) },
        "errors": {
            "connect": c(&counters.errors[0]),
            "handshake": c(&counters.errors[1]),
            "io": c(&counters.errors[2]),
            "timeout": c(&counters.errors[3]),
            "server_handshake": c(&counters.server_handshake_errors),
            "server_unplanned": c(&counters.server_unplanned),
        },
        "late_starts": c(&counters.late_starts),
        "app_bytes_up": c(&counters.bytes_up),
        "app_bytes_down": c(&counters.bytes_down),
        "capture": cap_stats,
        "elapsed_secs": elapsed,
        "flows_per_sec": rows.len() as f64 / elapsed.max(1e-9),
    });
    let mut err = std::io::stderr().lock();
    writeln!(err, "nightjar-flood: {}", serde_json::to_string_pretty(&summary)?)?;
    if let Some(p) = &cli.summary_json {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::config::{Class, Transport};

    fn scenario(name: &str, cat: &Catalogue) -> Scenario {
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml")), cat).unwrap()
    }

    /// (family, client profile) pairs a scenario can produce, and its families.
    fn reach(sc: &Scenario, cat: &Catalogue) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut clients = BTreeSet::new();
        let mut families = BTreeSet::new();
        for m in &sc.mix {
            let f = cat.family(&m.family).unwrap();
            families.insert(f.name.clone());
            clients.extend(m.clients.clone().unwrap_or_else(|| f.clients.clone()));
        }
        (families, clients)
    }

    #[test]
    fn shipped_scenarios_parse_and_the_test_set_is_held_out() {
        let cat = Catalogue::from_toml(CATALOGUE).unwrap();
        for name in ["smoke", "load", "train", "test"] {
            scenario(name, &cat);
        }
        let (train, test) = (scenario("train", &cat), scenario("test", &cat));
        let (train_fams, train_clients) = reach(&train, &cat);
        assert!(train_clients.len() >= 15, "{train_clients:?}");
        let attack = train_fams.iter().filter(|f| cat.family(f).unwrap().class == Class::Attack).count();
        assert!(attack >= 10, "{attack} attack families");
        assert!(train.flows >= 60_000);
        for m in &test.mix {
            let f = cat.family(&m.family).unwrap();
            if train_fams.contains(&f.name) {
                // A training family may appear only with clients training never saw.
                assert_eq!(f.transport, Transport::Tls, "{}: plaintext family seen in training", f.name);
                let clients = m
                    .clients
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: training family without held-out clients", f.name));
                for c in clients {
                    assert!(!train_clients.contains(c), "{}: client {c} seen in training", f.name);
                }
            }
        }
        let classes: BTreeSet<Class> = test.mix.iter().map(|m| cat.family(&m.family).unwrap().class).collect();
        assert_eq!(classes.len(), 3);
    }

    #[test]
    fn same_seed_same_flows() {
        let cat = Catalogue::from_toml(CATALOGUE).unwrap();
        let data = data_dir(None);
        if !data.exists() {
            assert!(std::env::var_os("NIGHTJAR_REQUIRE_SHARED").is_none(), "{} missing", data.display());
            return;
        }
        let mut sc = scenario("smoke", &cat);
        let families = sc.mix.iter().map(|m| m.family.clone()).collect();
        let corpus = http::HttpCorpus::load(&cat, &data, &families, sc.http_part).unwrap();
        let a = format!("{:?}", plan::draw(&cat, &sc, &corpus).unwrap());
        let b = format!("{:?}", plan::draw(&cat, &sc, &corpus).unwrap());
        assert_eq!(a, b);
        sc.seed += 1;
        let c = format!("{:?}", plan::draw(&cat, &sc, &corpus).unwrap());
        assert_ne!(a, c);
        // Every family of the smoke mix is drawn, so all three classes are present.
        let plans = plan::draw(&cat, &scenario("smoke", &cat), &corpus).unwrap();
        let drawn: BTreeSet<usize> = plans.iter().map(|p| p.family).collect();
        assert_eq!(drawn.len(), sc.mix.len());
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_reason() {
        let cat = Catalogue::from_toml(CATALOGUE).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        for (body, want) in [
            ("name='x'\nseed=1\nflows=10\nrate=1.0\nmix=[{family='nope', weight=1}]", "unknown family nope"),
            ("name='x'\nseed=1\nflows=0\nrate=1.0\nmix=[{family='sqli', weight=1}]", "flows must be positive"),
            (
                "name='x'\nseed=1\nflows=5\nrate=1.0\nmix=[{family='sqli', weight=1, clients=['ossl-default']}]",
                "plaintext takes no TLS profiles",
            ),
            ("name='x'\nseed=1\nflows=5\nrate=1.0\nbogus=1\nmix=[{family='sqli', weight=1}]", "unknown field"),
        ] {
            std::fs::write(&p, body).unwrap();
            let err = format!("{:#}", Scenario::load(&p, &cat).unwrap_err());
            assert!(err.contains(want), "{err}");
        }
    }
}
