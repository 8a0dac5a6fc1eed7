//! `replay` on SIGTERM (and SIGINT): it stops reading, ends and writes every flow it has
//! read, writes the summary, and exits with 130; the events file holds complete JSON
//! lines only, as many as the summary counts. The input is a capture that never ends.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A capture that never ends: a FIFO fed by a thread with the demo's generated capture
/// over and over, each round 1,000 s later than the one before (new flows each round),
/// until the reader goes away.
fn endless_capture(dir: &std::path::Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/generated/demo-threats.pcap");
    let bytes = std::fs::read(src).expect("capture");
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "classic little-endian pcap");
    let fifo = dir.join("endless.pcap");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let path = fifo.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let Ok(mut out) = std::fs::OpenOptions::new().write(true).open(&path) else { return };
        if out.write_all(&bytes[..24]).is_err() {
            return;
        }
        let mut round: u32 = 0;
        loop {
            let mut off = 24;
            let mut chunk = Vec::with_capacity(bytes.len());
            while off + 16 <= bytes.len() {
                let mut rec = bytes[off..off + 16].to_vec();
                let ts = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) + round * 1000;
                rec[..4].copy_from_slice(&ts.to_le_bytes());
                let len = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
                chunk.extend_from_slice(&rec);
                chunk.extend_from_slice(&bytes[off + 16..off + 16 + len]);
                off += 16 + len;
            }
            // The reader stopped (EPIPE): done.
            if out.write_all(&chunk).is_err() {
                return;
            }
            round += 1;
        }
    });
    fifo
}

fn interrupted_replay(signal: i32, workers: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = endless_capture(dir.path());
    let (ev, sum) = (dir.path().join("events.jsonl"), dir.path().join("summary.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["replay", "--quiet", "--workers", workers, "--events"])
        .arg(&ev)
        .arg("--summary-json")
        .arg(&sum)
        .arg(&capture)
        .spawn()
        .expect("run nightjar");
    // Wait until events are flowing, then signal.
    let start = Instant::now();
    while std::fs::metadata(&ev).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(start.elapsed() < Duration::from_secs(120), "no events after 120 s");
        assert!(child.try_wait().expect("wait").is_none(), "the replay ended before the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sum).expect("summary written")).expect("summary JSON");
    assert_eq!(s["interrupted"], true, "{s}");
    let text = std::fs::read_to_string(&ev).expect("events");
    assert!(text.ends_with('\n'), "the last line is complete");
    let mut n = 0;
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("complete JSON line");
        n += 1;
    }
    assert_eq!(n as u64, s["events"].as_u64().expect("events"), "every counted event is in the file");
    assert!(n > 0);
}

#[test]
fn sigterm_drains_and_writes_the_summary() {
    interrupted_replay(libc::SIGTERM, "2");
}

#[test]
fn sigint_on_one_worker_too() {
    interrupted_replay(libc::SIGINT, "1");
}
