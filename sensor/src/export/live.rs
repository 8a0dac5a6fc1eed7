//! The verdict history behind the live page: verdict counts per minute and per day of
//! capture time (so a replay of last week's capture shows last week), which the workers
//! add to once per batch and the control plane's endpoint serves as `/api/live`
//! ([`crate::control::page`] draws it).

use std::collections::BTreeMap;
use std::sync::Mutex;

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
