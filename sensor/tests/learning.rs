//! Online learning end to end, through the binary: prequential replay (`--feedback`),
//! checkpoints that survive SIGKILL and a restart, and a model hot swap (SIGHUP) while a
//! replay runs, with every packet and flow accounted for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_benches::{fixture_paths, load_frames, synth, template_flows, write_pcap};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nightjar"))
}

/// A synthetic capture of `copies` clones of every fixture flow; returns (path, frames).
fn capture(dir: &Path, copies: u64) -> (PathBuf, usize) {
    let frames = load_frames(&fixture_paths()).expect("fixtures");
    let templates = template_flows(&frames);
    let out = synth(&templates, copies, 2_000_000, 1_700_000_000_000_000_000);
    let p = dir.join("synth.pcap");
    write_pcap(&p, &out).expect("write pcap");
    (p, out.len())
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect()
}

fn tuple(e: &serde_json::Value) -> String {
    format!(
        "{},{},{},{}",
        e["src_ip"].as_str().unwrap_or(""),
        e["src_port"],
        e["dest_ip"].as_str().unwrap_or(""),
        e["dest_port"]
    )
}

/// Labels as `malware` every TLS flow the trained model calls benign (a "new family"
/// for this test); returns the labels file and the labelled tuples.
fn malware_labels(dir: &Path, baseline: &[serde_json::Value]) -> (PathBuf, BTreeSet<String>) {
    let mut text = String::from("client_ip,client_port,server_ip,server_port,class,source\n");
    let mut set = BTreeSet::new();
    for e in baseline.iter().filter(|e| e["app"] == "tls" && e["verdict"]["class"] == "benign") {
        let _ = writeln!(text, "{},malware,file", tuple(e));
        set.insert(tuple(e));
    }
    let p = dir.join("labels.csv");
    std::fs::write(&p, text).expect("labels");
    (p, set)
}

fn replay(args: &[&str]) -> std::process::Output {
    let out = bin().arg("replay").arg("--quiet").args(args).output().expect("run nightjar");
    assert!(out.status.success(), "nightjar replay {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn prequential_replay_learns_labelled_flows_and_checkpoints_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pcap, _) = capture(dir.path(), 40);
    let pcap_s = pcap.to_str().expect("utf-8");
    let base = dir.path().join("base.jsonl");
    replay(&["--workers", "1", "--events", base.to_str().expect("p"), pcap_s]);
    let baseline = events(&base);
    let (labels, labelled) = malware_labels(dir.path(), &baseline);
    assert!(labelled.len() >= 40, "{} benign TLS flows", labelled.len());

    // Prequential: each label is learned after its flow was scored.
    let state = dir.path().join("state");
    let ev = dir.path().join("learned.jsonl");
    let summary = dir.path().join("summary.json");
    let labels_s = labels.to_str().expect("p");
    replay(&[
        "--feedback",
        labels_s,
        "--state-dir",
        state.to_str().expect("p"),
        "--events",
        ev.to_str().expect("p"),
        "--summary-json",
        summary.to_str().expect("p"),
        pcap_s,
    ]);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("JSON");
    let learning = &s["learning"];
    assert_eq!(learning["labels"].as_u64(), Some(labelled.len() as u64), "{s}");
    assert!(learning["outcomes"]["applied"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(learning["outcomes"]["held_back"].as_u64().unwrap_or(0) > 0, "{s}");
    let learned = events(&ev);
    assert_eq!(learned.len(), baseline.len());
    // Labels that passed the source checks are logged for retraining, in the labels
    // format of `model/` and `--feedback` (one line per label here: none rate-limited).
    let log = std::fs::read_to_string(state.join("feedback.csv")).expect("feedback log");
    let mut rows = log.lines();
    assert_eq!(rows.next(), Some("client_ip,client_port,server_ip,server_port,start_ts,class,family,source"));
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), labelled.len());
    assert!(rows.iter().all(|r| r.ends_with(",malware,feedback:file,file")
        && labelled.contains(&r.split(',').take(4).collect::<Vec<_>>().join(","))));
    // Heads only move forward, the first flow was scored by the trained head, and every
    // labelled flow's verdict was given before its own label was learned: the head that
    // scored it is older than the head after the replay.
    let heads: Vec<u64> = learned.iter().filter_map(|e| e["verdict"]["head"].as_u64()).collect();
    assert_eq!(heads.len(), learned.iter().filter(|e| e["verdict"]["score"].is_number()).count());
    assert_eq!(heads.first(), Some(&0));
    assert!(heads.windows(2).all(|w| w[0] <= w[1]), "head versions must not go back");
    let last = learning["head_version"].as_u64().expect("head version");
    assert!(last > 0 && *heads.last().expect("heads") <= last);
    // Learning shows: the labelled kind of flow is called malware far more often in the
    // second half of the replay than before learning.
    let share = |evs: &[serde_json::Value], from: usize| {
        let sel: Vec<&serde_json::Value> = evs[from..].iter().filter(|e| labelled.contains(&tuple(e))).collect();
        sel.iter().filter(|e| e["verdict"]["class"] == "malware").count() as f64 / sel.len().max(1) as f64
    };
    let half = learned.len() / 2;
    assert!(share(&learned, half) >= 0.3, "malware share after learning {}", share(&learned, half));
    assert!(share(&baseline, half) < 0.05);

    // The checkpoint resumes: a replay with the state dir scores with the learned head.
    let again = resumed_replay(&state, &dir.path().join("again.jsonl"), pcap_s, last);
    assert!(again.iter().filter_map(|e| e["verdict"]["head"].as_u64()).all(|h| h == last));

    sigkill_then_restart(dir.path(), pcap_s, labels_s);
}

/// Replays `pcap` with the learner state in `state` (one worker); checks that the learner
/// resumed head version `version` and returns the events.
fn resumed_replay(state: &Path, events_path: &Path, pcap: &str, version: u64) -> Vec<serde_json::Value> {
    let out = replay(&[
        "--workers",
        "1",
        "--state-dir",
        state.to_str().expect("p"),
        "--events",
        events_path.to_str().expect("p"),
        pcap,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("resumed head version {version}")));
    events(events_path)
}

/// SIGKILL in the middle of a prequential run, then restarts from its state directory.
fn sigkill_then_restart(dir: &Path, pcap_s: &str, labels_s: &str) {
    // SIGKILL in the middle of a prequential run: the checkpoint on disk is whole
    // (written atomically), and a restart scores with exactly that head, twice alike.
    let killed = dir.join("killed");
    let mut child = bin()
        .args(["replay", "--quiet", "--no-events", "--feedback", labels_s, "--state-dir", killed.to_str().expect("p")])
        .args([pcap_s, pcap_s, pcap_s, pcap_s])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let ckpt = killed.join("learner.ckpt");
    let start = Instant::now();
    while !ckpt.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let st = nightjar::learn::checkpoint::read(&ckpt).expect("a checkpoint written before SIGKILL is intact");
    let v = st.head.version;
    assert!(v > 0);
    let runs: Vec<Vec<(String, String, Option<u64>)>> = (0..2)
        .map(|i| {
            resumed_replay(&killed, &dir.join(format!("restart{i}.jsonl")), pcap_s, v)
                .iter()
                .map(|e| (tuple(e), e["verdict"]["class"].to_string(), e["verdict"]["head"].as_u64()))
                .collect()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().all(|r| r.2.is_none_or(|h| h == v)));

    // A corrupt checkpoint is refused with a clear error and the previous one is used.
    std::fs::write(&ckpt, b"{\"format\":1,\"sha256\":\"00\",\"payload\":\"{}\"}").expect("corrupt");
    let out = replay(&["--workers", "1", "--no-events", "--state-dir", killed.to_str().expect("p"), pcap_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is corrupt") && err.contains("learner.ckpt"), "{err}");
}

#[test]
fn model_hot_swap_during_a_replay_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pcap, frames) = capture(dir.path(), 120);
    // A model directory the test can change under the running sensor.
    let art = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/artifacts");
    let mdir = dir.path().join("model");
    std::fs::create_dir(&mdir).expect("mkdir");
    for f in ["nightjar.json", "nightjar-float.onnx", "nightjar-int8.onnx", "nightjar-reference.json"] {
        std::fs::copy(art.join(f), mdir.join(f)).expect("copy model");
    }
    let meta = mdir.join("nightjar.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let ev = dir.path().join("events.jsonl");
    let sum = dir.path().join("summary.json");
    let mut child = bin()
        .args(["--model", meta.to_str().expect("p"), "replay", "--quiet", "--workers", "2"])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}"), "--events", ev.to_str().expect("p")])
        .args(["--summary-json", sum.to_str().expect("p"), pcap.to_str().expect("p")])
        .spawn()
        .expect("spawn");
    // Once the learner has seen scored flows, switch the metadata's default variant and
    // send SIGHUP.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(120), "replay never scored a flow");
        if let Ok(r) = ureq::get(&format!("http://127.0.0.1:{port}/learning")).call()
            && r.into_json::<serde_json::Value>().is_ok_and(|j| j["cached_flows"].as_u64().unwrap_or(0) > 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let text = std::fs::read_to_string(&meta).expect("meta");
    let mut j: serde_json::Value = serde_json::from_str(&text).expect("meta JSON");
    j["default"] = "int8".into();
    std::fs::write(&meta, j.to_string()).expect("write meta");
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let status = child.wait().expect("wait");
    assert!(status.success());
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&sum).expect("summary")).expect("JSON");
    assert_eq!(s["packets"].as_u64(), Some(frames as u64), "every packet read");
    let evs = events(&ev);
    assert_eq!(s["events"].as_u64(), Some(evs.len() as u64));
    assert_eq!(s["flows"].as_u64(), Some(evs.len() as u64), "every flow written");
    let mut by_model: BTreeMap<String, usize> = BTreeMap::new();
    for e in &evs {
        if let Some(m) = e["verdict"]["model"].as_str() {
            *by_model.entry(m.to_owned()).or_default() += 1;
        }
    }
    assert!(by_model.keys().any(|m| m.ends_with("/float")), "{by_model:?}");
    assert!(by_model.keys().any(|m| m.ends_with("/int8")), "the swap happened mid-replay: {by_model:?}");
    assert_eq!(s["inference_errors"].as_u64(), Some(0));
}

#[test]
fn feedback_api_validates_and_applies_labels() {
    let dir = tempfile::tempdir().expect("tmp");
    let (pcap, _) = capture(dir.path(), 5);
    let token = "test-token-0123456789abcdef";
    let cfg = dir.path().join("nightjar.toml");
    std::fs::write(&cfg, format!("[learning.sources.api]\ntoken = \"{token}\"\n")).expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let ev = dir.path().join("events.jsonl");
    let mut child = bin()
        .args(["--config", cfg.to_str().expect("p"), "replay", "--quiet", "--workers", "1"])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}"), "--linger-secs", "60"])
        .args(["--events", ev.to_str().expect("p"), pcap.to_str().expect("p")])
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    // The events file is complete once the learner has every scored flow cached.
    let start = Instant::now();
    let evs = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "replay never finished");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(text) = std::fs::read_to_string(&ev) else { continue };
        let scored = text.lines().filter(|l| l.contains("\"head\":")).count();
        let cached = ureq::get(&format!("{base}/learning"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok())
            .and_then(|j| j["cached_flows"].as_u64());
        if scored > 0 && cached == Some(scored as u64) {
            break events(&ev);
        }
    };
    let flow = evs.iter().find(|e| e["verdict"]["head"].is_u64()).expect("a scored flow");
    let post = |auth: Option<&str>, body: &str| -> (u16, String) {
        let mut req = ureq::post(&format!("{base}/feedback")).set("Content-Type", "application/json");
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        match req.send_string(body) {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        }
    };
    let bearer = format!("Bearer {token}");
    let good = format!("{{\"flow_id\": {}, \"class\": \"malware\"}}", flow["flow_id"]);
    assert_eq!(post(None, &good).0, 401);
    assert_eq!(post(Some("Bearer wrong-token-0123456789"), &good).0, 401);
    assert_eq!(post(Some(&bearer), "{not json").0, 400);
    assert_eq!(post(Some(&bearer), &format!("{{\"flow_id\": {}, \"class\": \"evil\"}}", flow["flow_id"])).0, 400);
    assert_eq!(post(Some(&bearer), "{\"flow_id\": 1, \"class\": 2}").0, 404);
    let (code, body) = post(Some(&bearer), &good);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("applied") || body.contains("held_back") || body.contains("shadow"), "{body}");
    // By 5-tuple as well ...
    let by_tuple = format!(
        "{{\"client_ip\": {}, \"client_port\": {}, \"server_ip\": {}, \"server_port\": {}, \"class\": 0}}",
        flow["src_ip"], flow["src_port"], flow["dest_ip"], flow["dest_port"]
    );
    // ... which names the same flow: one label per flow per source, the repeat is refused.
    let (code, body) = post(Some(&bearer), &by_tuple);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    let st: serde_json::Value =
        ureq::get(&format!("{base}/learning")).call().expect("status").into_json().expect("JSON");
    assert_eq!(st["labels_seen"].as_u64(), Some(2), "{st}");
    let metrics = ureq::get(&format!("{base}/metrics")).call().expect("metrics").into_string().expect("text");
    assert!(metrics.contains("nightjar_learning_feedback_total{source=\"api\""), "feedback counted per source");
    let _ = child.kill();
    let _ = child.wait();
}
