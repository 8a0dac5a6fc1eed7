//! The live page served at `/` (beside `/metrics`): the four views of the traffic classes
//! (share of malicious vs benign, per-class time series, per-class counts per day, total
//! flows over time) drawn by Apache ECharts, which is embedded in the binary
//! (`sensor/assets/`), so the page needs nothing but the sensor. The page polls
//! `/api/live`, a JSON snapshot of [`History`]: verdict counts per minute and per day of
//! capture time (so a replay of last week's capture shows last week).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The page.
pub const PAGE: &str = include_str!("../../assets/live.html");
/// Apache ECharts 5.6.0 (`dist/echarts.min.js` of the npm package).
pub const ECHARTS: &[u8] = include_bytes!("../../assets/echarts.min.js");
/// SHA-256 of [`ECHARTS`] as published in the npm package.
pub const ECHARTS_SHA256: &str = "bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1";

/// Minutes kept (one day).
const MAX_MINUTES: usize = 24 * 60;
/// Days kept.
const MAX_DAYS: usize = 90;

/// Verdict counts (benign, attack, malware, unknown) per minute and per day.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    minutes: BTreeMap<u64, [u64; 4]>,
    days: BTreeMap<u64, [u64; 4]>,
    total: [u64; 4],
}

/// A worker's counts since its last flush: minute (Unix seconds / 60) -> counts.
pub type Delta = BTreeMap<u64, [u64; 4]>;

impl History {
    /// Adds a worker's counts.
    pub fn add(&self, delta: &Delta) {
        let Ok(mut h) = self.inner.lock() else { return };
        for (&minute, counts) in delta {
            let day = minute / (24 * 60);
            for (i, c) in counts.iter().enumerate() {
                h.minutes.entry(minute).or_default()[i] += c;
                h.days.entry(day).or_default()[i] += c;
                h.total[i] += c;
            }
        }
        while h.minutes.len() > MAX_MINUTES {
            h.minutes.pop_first();
        }
        while h.days.len() > MAX_DAYS {
            h.days.pop_first();
        }
    }

    /// The snapshot the page draws: `{"classes", "total", "minutes": [[ms, b, a, m, u]..],
    /// "days": [[ms, b, a, m, u]..]}`.
    pub fn snapshot_json(&self) -> String {
        let Ok(h) = self.inner.lock() else { return "{}".into() };
        let rows = |m: &BTreeMap<u64, [u64; 4]>, unit_ms: u64| -> Vec<serde_json::Value> {
            m.iter().map(|(k, c)| serde_json::json!([k * unit_ms, c[0], c[1], c[2], c[3]])).collect()
        };
        serde_json::json!({
            "classes": ["benign", "attack", "malware", "unknown"],
            "total": h.total,
            "minutes": rows(&h.minutes, 60_000),
            "days": rows(&h.days, 86_400_000),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn embedded_echarts_is_the_published_file() {
        assert_eq!(crate::decode::tls::hex(&Sha256::digest(ECHARTS)), ECHARTS_SHA256);
        assert!(PAGE.contains("/assets/echarts.min.js") && PAGE.contains("/api/live"));
    }

    #[test]
    fn history_buckets_by_minute_and_day_and_stays_bounded() {
        let h = History::default();
        let mut d = Delta::new();
        d.insert(1_000, [1, 2, 0, 0]);
        d.insert(1_001, [0, 0, 3, 1]);
        h.add(&d);
        h.add(&d);
        let j: serde_json::Value = serde_json::from_str(&h.snapshot_json()).expect("JSON");
        assert_eq!(j["total"], serde_json::json!([2, 4, 6, 2]));
        assert_eq!(j["minutes"][0], serde_json::json!([60_000_000, 2, 4, 0, 0]));
        assert_eq!(j["days"].as_array().map(Vec::len), Some(1));
        let many: Delta = (0..(MAX_MINUTES as u64 + 10)).map(|m| (m, [1, 0, 0, 0])).collect();
        h.add(&many);
        let j: serde_json::Value = serde_json::from_str(&h.snapshot_json()).expect("JSON");
        assert_eq!(j["minutes"].as_array().map(Vec::len), Some(MAX_MINUTES));
    }
}
