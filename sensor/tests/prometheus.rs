//! The operators' side against a real Prometheus (Debian's `prometheus`): it scrapes a
//! `nightjar replay` of the bundled captures, loads `deploy/prometheus/alerts.yml`, and
//! every PromQL expression of the Grafana dashboards and the alert rules is run through its
//! HTTP API. Dashboard expressions must return data; alert rules must evaluate without
//! error, and every metric they name must exist in the scrape.
//!
//! Skips when `prometheus` is not installed, unless `NIGHTJAR_REQUIRE_TOOLS=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn query(prom: &str, expr: &str) -> serde_json::Value {
    let resp = ureq::get(&format!("http://{prom}/api/v1/query")).query("query", expr).call();
    match resp {
        Ok(r) => r.into_json().expect("JSON"),
        Err(ureq::Error::Status(_, r)) => r.into_json().expect("JSON error body"),
        Err(e) => panic!("query {expr}: {e}"),
    }
}

/// Every `expr` of every panel target of the dashboards, with Grafana's variables filled in.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let d: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("dashboard JSON");
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let e = t["expr"].as_str().expect("expr");
                let e = e
                    .replace("$instance", ".*")
                    .replace("$__rate_interval", "20s")
                    .replace("$__range", "1m")
                    .replace("$__interval", "20s");
                out.push((format!("{} / {}", d["title"], p["title"]), e));
            }
        }
    }
    out
}

fn dashboards_are_valid_for_provisioning() {
    for entry in std::fs::read_dir(root().join("grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        let path = path.display();
        // What Grafana's file provisioning needs: a uid, a title, a schema version, panels with
        // unique ids, a type and a grid position, and the instance variable for fleets.
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "{path}: uid");
        assert!(d["title"].is_string() && d["schemaVersion"].is_u64(), "{path}");
        let mut ids = std::collections::BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{path}: duplicate panel id");
            assert!(p["type"].is_string() && p["gridPos"]["w"].is_u64() && p["gridPos"]["h"].is_u64(), "{path}");
        }
        let vars: Vec<&str> =
            d["templating"]["list"].as_array().expect("templating").iter().filter_map(|v| v["name"].as_str()).collect();
        assert!(vars.contains(&"instance") && vars.contains(&"datasource"), "{path}: {vars:?}");
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one end-to-end check in order: start, scrape, dashboards, rules")]
fn prometheus_scrapes_replay_and_every_expression_works() {
    dashboards_are_valid_for_provisioning();
    let Ok(found) = Command::new("sh").args(["-c", "command -v prometheus"]).output() else { return };
    let prometheus = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    if prometheus.is_empty() {
        assert!(std::env::var_os("NIGHTJAR_REQUIRE_TOOLS").is_none(), "prometheus is required but not installed");
        // Written to the real stderr: the test harness shows it even when the test passes.
        let _ =
            std::io::Write::write_all(&mut std::io::stderr(), "SKIP prometheus: prometheus not installed\n".as_bytes());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mport, pport) = (free_port(), free_port());
    let alerts = root().join("deploy/prometheus/alerts.yml").canonicalize().expect("alerts.yml");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: nightjar\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n",
            alerts.display()
        ),
    )
    .expect("config");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root().join("sensor/tests/data"))
        .expect("data")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    fixtures.sort();
    let _sensor = Kill(
        Command::new(env!("CARGO_BIN_EXE_nightjar"))
            .args([
                "replay",
                "--quiet",
                "--no-events",
                "--metrics-listen",
                &format!("127.0.0.1:{mport}"),
                "--linger-secs",
                "60",
            ])
            .args(&fixtures)
            .stdout(Stdio::null())
            .spawn()
            .expect("nightjar"),
    );
    let _prom = Kill(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let prom = format!("127.0.0.1:{pport}");
    // Wait for scrapes that carry the replay's counters, then a few more for rate().
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(45), "Prometheus never scraped the replay's counters");
        std::thread::sleep(Duration::from_millis(500));
        if ureq::get(&format!("http://{prom}/-/ready")).call().is_err() {
            continue;
        }
        let r = query(&prom, "nightjar_events_total");
        if r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(5));

    // XDP decisions exist only on a live XDP capture (checked by tests/live_xdp.rs), Kafka
    // counters only with --kafka (tests/kafka.rs).
    let live_only = ["nightjar_xdp_decisions_total", "nightjar_kafka_"];
    for (panel, expr) in dashboard_exprs() {
        let r = query(&prom, &expr);
        assert_eq!(r["status"], "success", "{panel}: {expr}: {r}");
        if live_only.iter().any(|m| expr.contains(m)) {
            continue;
        }
        assert!(r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()), "{panel}: no data for {expr}");
    }

    // Alert rules: loaded, evaluated without error; every metric they use is scraped.
    let start = Instant::now();
    let rules = loop {
        let r: serde_json::Value =
            ureq::get(&format!("http://{prom}/api/v1/rules")).call().expect("rules").into_json().expect("JSON");
        let rules: Vec<serde_json::Value> = r["data"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if !rules.is_empty()
            && rules.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")))
        {
            break rules;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "rules never evaluated: {r}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(rules.len(), 9);
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        let q = rule["query"].as_str().expect("query");
        let r = query(&prom, q);
        assert_eq!(r["status"], "success", "{q}: {r}");
        let mut rest = q;
        while let Some(i) = rest.find("nightjar_") {
            let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let r = query(&prom, &format!("count({{__name__=\"{name}\"}})"));
            assert!(
                r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()),
                "alert {}: metric {name} not scraped",
                rule["name"]
            );
            rest = &rest[i + name.len()..];
        }
    }
}
