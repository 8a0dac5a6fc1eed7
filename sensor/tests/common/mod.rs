//! Helpers shared by the integration tests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use nightjar::config::Config;
use nightjar::fingerprint::{Transport, ja3, ja3s, ja4};
use nightjar::runtime::replay_records;

/// The shared data directory (`../shared/data` beside the repository), or `None` with a
/// message when it is absent. Set `NIGHTJAR_REQUIRE_SHARED=1` (CI does) to make its
/// absence a failure instead.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("NIGHTJAR_SHARED_DATA")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"), PathBuf::from);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("NIGHTJAR_REQUIRE_SHARED").is_none(), "shared data not found at {}", dir.display());
    // Written to the real stderr: the test harness shows it even when the test passes.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIP: shared data not found at {} (set NIGHTJAR_SHARED_DATA)\n", dir.display()).as_bytes(),
    );
    None
}

/// Fingerprints of one flow, every hello included.
#[derive(Debug, Default, Clone)]
pub struct FlowPrints {
    /// JA3 MD5 of each ClientHello.
    pub ja3: Vec<String>,
    /// JA3S MD5 of the ServerHello.
    pub ja3s: Vec<String>,
    /// JA4 of each ClientHello.
    pub ja4: Vec<String>,
}

/// Endpoint pair, client first.
pub type Tuple = (IpAddr, u16, IpAddr, u16);

/// Replays one capture and returns the fingerprints per flow, keyed by the oriented
/// 5-tuple (several flows can share a tuple: their prints are concatenated).
pub fn prints_of(path: &std::path::Path) -> HashMap<Tuple, FlowPrints> {
    let mut out: HashMap<Tuple, FlowPrints> = HashMap::new();
    let cfg = Config::default();
    let _ = replay_records(&cfg, &[path.to_path_buf()], &mut |rec| {
        let f = rec;
        let Some(t) = f.tls.as_deref() else { return };
        let e = out.entry((f.client_ip, f.client_port, f.server_ip, f.server_port)).or_default();
        for ch in &t.client_hellos {
            e.ja3.push(ja3(ch).hash);
            e.ja4.push(ja4(ch, Transport::Tcp).hash);
        }
        for sh in &t.server_hellos {
            e.ja3s.push(ja3s(sh).hash);
        }
    });
    out
}

/// Looks a tuple up in either orientation.
pub fn lookup(m: &HashMap<Tuple, FlowPrints>, t: Tuple) -> Option<&FlowPrints> {
    m.get(&t).or_else(|| m.get(&(t.2, t.3, t.0, t.1)))
}
