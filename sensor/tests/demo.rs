//! `nightjar demo`: the table tells the truth about every bundled flow, and `--serve`
//! keeps the live page and metrics of the run up until SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn demo_prints_the_table_and_serve_keeps_the_live_page_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["demo", "--serve", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run nightjar demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(300)).expect("the demo prints its URL");
        lines.push(line.clone());
        if let Some(rest) = line.split("this run: http://").nth(1) {
            break rest.split('/').next().expect("host:port").to_owned();
        }
    };
    let table = lines.join("\n");
    // 6 real benign flows and 16 generated threats, each with its truth.
    assert!(table.contains("22 flows: benign "), "{table}");
    assert_eq!(table.matches("benign (real)").count(), 6, "{table}");
    assert_eq!(table.matches("(gen)").count(), 16, "{table}");
    assert!(table.contains("Real benign flows"), "{table}");
    assert!(table.contains("Generated threats"), "{table}");

    let live = get(&url, "/api/live");
    assert!(live.contains(" 200 "), "{live}");
    let body = live.split("\r\n\r\n").nth(1).expect("body");
    let j: serde_json::Value = serde_json::from_str(body).expect("live JSON");
    assert!(j.is_object(), "{j}");
    assert!(get(&url, "/metrics").contains("nightjar_capture_packets_total"), "metrics of the run");
    assert!(get(&url, "/readyz").contains(" 503 "), "a finished replay is not ready");

    // SIGTERM ends it cleanly.
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}
