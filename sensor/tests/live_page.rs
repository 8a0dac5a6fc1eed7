//! The live page in a real browser: headless Chromium (Debian's `chromium`) loads `/`
//! from a sensor that replayed the sample captures, the four ECharts views render with
//! the replay's data, and a screenshot is kept (`target/test-artifacts/live-page.png`).
//! Skipped when Chromium is not installed, unless `NIGHTJAR_REQUIRE_TOOLS` is set (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    })
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn live_page_renders_the_replay_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("NIGHTJAR_REQUIRE_TOOLS").is_none(), "chromium is required but not installed");
        // Written to the real stderr: the test harness shows it even when the test passes.
        let _ =
            std::io::Write::write_all(&mut std::io::stderr(), "SKIP live_page: chromium not installed\n".as_bytes());
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("sensor/tests/data"))
        .expect("data")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    fixtures.sort();
    let dir = tempfile::tempdir().expect("tmp");
    let events = dir.path().join("events.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let _sensor = Kill(
        Command::new(env!("CARGO_BIN_EXE_nightjar"))
            .args(["replay", "--quiet", "--metrics-listen", &format!("127.0.0.1:{port}"), "--linger-secs", "120"])
            .args(["--events", events.to_str().expect("p")])
            .args(&fixtures)
            .spawn()
            .expect("nightjar"),
    );
    // Wait until the replay is over: the page's data then covers every classified flow.
    let start = Instant::now();
    let live: serde_json::Value = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "the replay never finished");
        std::thread::sleep(Duration::from_millis(200));
        let Ok(text) = std::fs::read_to_string(&events) else { continue };
        let classified = text.lines().filter(|l| l.contains("\"score\":0") || l.contains("\"score\":1")).count();
        let Ok(r) = ureq::get(&format!("{base}/api/live")).call() else { continue };
        let j: serde_json::Value = r.into_json().expect("JSON");
        let total: u64 = j["total"].as_array().map_or(0, |a| a.iter().filter_map(serde_json::Value::as_u64).sum());
        if classified > 0 && total >= classified as u64 {
            break j;
        }
    };
    let total: u64 = live["total"].as_array().expect("total").iter().filter_map(serde_json::Value::as_u64).sum();
    assert!(live["minutes"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(live["days"].as_array().is_some_and(|d| !d.is_empty()));

    let art = root.join("target/test-artifacts");
    std::fs::create_dir_all(&art).expect("artifact dir");
    let shot = art.join("live-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = dir.path().join("chromium-profile");
    let run = |extra: &[&str]| {
        Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--window-size=1280,800", "--virtual-time-budget=8000"])
            .args(extra)
            .arg(format!("{base}/"))
            .stderr(Stdio::null())
            .output()
            .expect("chromium")
    };
    // The DOM after the scripts ran: four charts drawn on canvases, and the page's own
    // count of classified flows equal to the sensor's.
    let dom = run(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&format!("data-flows=\"{total}\"")),
        "the page did not draw the replay's {total} flows:\n{dom}"
    );
    assert_eq!(dom.matches("<canvas").count(), 4, "four charts:\n{dom}");
    assert!(dom.contains("classified flows"), "{dom}");
    let out = run(&[&format!("--screenshot={}", shot.display())]);
    assert!(out.status.success(), "chromium screenshot failed");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot looks empty ({} bytes)", png.len());
    eprintln!("live page screenshot: {}", shot.display());
}
