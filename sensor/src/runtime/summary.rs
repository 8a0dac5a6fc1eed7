//! What a run did, as one type for replay and live capture: [`RunSummary`] prints the
//! summary on stderr (`Display`) and writes `--summary-json` (`Serialize`) from the same
//! counter list ([`counters`], every counter of [`Stats`] once, by stage). The JSON keeps
//! the keys earlier versions wrote (`packets`, `flows`, `events`, `detections`,
//! `reasons`, `learning`, `kafka`, `xdp`, `xsk`, `output_dropped`, ...) and adds
//! `counters`, every counter by stage.
//!
//! Takes counters; yields text. Nothing here is on the packet path.

use std::fmt;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::LearningSummary;
use crate::capture::KernelDrops;
use crate::decode::{DecodeError, Skip};
use crate::flow::EndReason;
use crate::inference::Class;
use crate::stats::Stats;

/// One counter: a number, or numbers by a bounded label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Count {
    /// A single number.
    One(u64),
    /// Numbers by label, in the label set's order.
    By(Vec<(&'static str, u64)>),
}

impl Count {
    fn total(&self) -> u64 {
        match self {
            Count::One(n) => *n,
            Count::By(v) => v.iter().map(|(_, n)| n).sum(),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Count::One(n) => s.serialize_u64(*n),
            Count::By(v) => {
                let mut m = s.serialize_map(Some(v.len()))?;
                for (k, n) in v {
                    m.serialize_entry(k, n)?;
                }
                m.end()
            }
        }
    }
}

fn by<const N: usize>(labels: [&'static str; N], values: &[u64; N]) -> Count {
    Count::By(labels.into_iter().zip(values.iter().copied()).collect())
}

/// A stage's counters, by name.
pub type Group = (&'static str, Vec<(&'static str, Count)>);

/// Every counter of `s`, by stage, each once. `Stats` is taken apart field by field, so
/// a counter added to it and not listed here does not compile.
pub fn counters(s: &Stats) -> Vec<Group> {
    use Count::One;
    let Stats {
        packets,
        bytes,
        tcp_packets,
        skipped,
        decode_errors,
        truncated_payloads,
        flows_created,
        flows_ended,
        tls_flows,
        http_flows,
        reassembly_buffered,
        reassembly_dropped,
        reassembly_duplicates,
        reassembly_overlaps,
        tls_handshake_truncated,
        tls_oversized_hello,
        tls_parse_errors,
        http_oversized,
        http_too_many_headers,
        proxy_headers,
        events,
        detections,
        inference_batches,
        inferred_flows,
        inference_errors,
        explained,
        reasons_skipped,
    } = *s;
    vec![
        ("capture", vec![("packets", One(packets)), ("bytes", One(bytes))]),
        (
            "decode",
            vec![
                ("tcp_packets", One(tcp_packets)),
                ("skipped", by(Skip::ALL.map(Skip::as_str), &skipped)),
                ("errors", by(DecodeError::ALL.map(DecodeError::as_str), &decode_errors)),
                ("truncated_payloads", One(truncated_payloads)),
            ],
        ),
        (
            "flow",
            vec![
                ("created", One(flows_created)),
                ("ended", by(EndReason::ALL.map(EndReason::as_str), &flows_ended)),
                ("tls", One(tls_flows)),
                ("http", One(http_flows)),
                ("proxy_headers", One(proxy_headers)),
            ],
        ),
        (
            "reassembly",
            vec![
                ("buffered", One(reassembly_buffered)),
                ("dropped", One(reassembly_dropped)),
                ("duplicates", One(reassembly_duplicates)),
                ("overlaps", One(reassembly_overlaps)),
            ],
        ),
        (
            "tls",
            vec![
                ("handshake_truncated", One(tls_handshake_truncated)),
                ("oversized_hello", One(tls_oversized_hello)),
                ("parse_errors", One(tls_parse_errors)),
            ],
        ),
        ("http", vec![("oversized", One(http_oversized)), ("too_many_headers", One(http_too_many_headers))]),
        (
            "inference",
            vec![
                ("batches", One(inference_batches)),
                ("flows", One(inferred_flows)),
                ("errors", One(inference_errors)),
                ("verdicts", by(Class::ALL.map(Class::as_str), &detections)),
                ("explained", One(explained)),
                ("reasons_skipped", One(reasons_skipped)),
            ],
        ),
        ("export", vec![("events", One(events))]),
    ]
}

/// What only live capture has.
#[derive(Clone, Debug)]
pub struct LiveParts<'a> {
    /// How the XDP program attached, as earlier versions wrote it (`Some(Native)`,
    /// `Some(Generic)`, or `None` on AF_PACKET).
    pub attach: String,
    /// The XDP program's decision counters, by name.
    pub xdp: Vec<(&'static str, u64)>,
    /// The kernel's drop counters of the sockets.
    pub xsk: KernelDrops,
    /// Lines dropped because the writer was behind.
    pub output_dropped: u64,
    /// The interface.
    pub iface: &'a str,
}

/// A run's summary (replay or live).
#[derive(Clone, Debug)]
pub struct RunSummary<'a> {
    /// `replay` or `run`.
    pub mode: &'static str,
    /// The summed counters.
    pub stats: &'a Stats,
    /// Wall time.
    pub elapsed: Duration,
    /// Workers used.
    pub workers: usize,
    /// Files that ended in an error (replay).
    pub file_errors: &'a [String],
    /// A signal stopped the reading early (replay).
    pub interrupted: bool,
    /// What online learning did, when it ran in the replay.
    pub learning: Option<&'a LearningSummary>,
    /// Live capture's own counters.
    pub live: Option<LiveParts<'a>>,
    /// Kafka delivery counters (`null` without Kafka).
    pub kafka: serde_json::Value,
}

impl Serialize for RunSummary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let st = self.stats;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("mode", self.mode)?;
        m.serialize_entry("packets", &st.packets)?;
        m.serialize_entry("tcp_packets", &st.tcp_packets)?;
        m.serialize_entry("flows", &st.flows_created)?;
        m.serialize_entry("tls_flows", &st.tls_flows)?;
        m.serialize_entry("http_flows", &st.http_flows)?;
        m.serialize_entry("events", &st.events)?;
        m.serialize_entry("detections", &by(Class::ALL.map(Class::as_str), &st.detections))?;
        m.serialize_entry("inference_errors", &st.inference_errors)?;
        m.serialize_entry(
            "reasons",
            &Count::By(vec![("explained", st.explained), ("skipped_budget", st.reasons_skipped)]),
        )?;
        m.serialize_entry("learning", &self.learning)?;
        m.serialize_entry("kafka", &self.kafka)?;
        m.serialize_entry("workers", &self.workers)?;
        m.serialize_entry("file_errors", self.file_errors)?;
        m.serialize_entry("elapsed_secs", &self.elapsed.as_secs_f64())?;
        m.serialize_entry("interrupted", &self.interrupted)?;
        if let Some(l) = &self.live {
            m.serialize_entry("attach", &l.attach)?;
            m.serialize_entry("xdp", &Count::By(l.xdp.clone()))?;
            let x = l.xsk;
            m.serialize_entry(
                "xsk",
                &Count::By(vec![
                    ("rx_dropped", x.rx_dropped),
                    ("rx_ring_full", x.rx_ring_full),
                    ("fill_ring_empty", x.fill_ring_empty),
                    ("rx_invalid", x.rx_invalid),
                    ("unstamped", x.unstamped),
                ]),
            )?;
            m.serialize_entry("output_dropped", &l.output_dropped)?;
        }
        let groups: serde_json::Map<String, serde_json::Value> = counters(st)
            .into_iter()
            .map(|(g, v)| {
                let items = v.into_iter().map(|(k, c)| (k.to_owned(), serde_json::to_value(c).unwrap_or_default()));
                (g.to_owned(), serde_json::Value::Object(items.collect()))
            })
            .collect();
        m.serialize_entry("counters", &groups)?;
        m.end()
    }
}

impl fmt::Display for RunSummary<'_> {
    /// The summary an operator reads: rates, then every counter that is not zero, by
    /// stage, then what went wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "nightjar {} summary", self.mode)?;
        if let Some(l) = &self.live {
            writeln!(f, "  interface      {} (XDP attach: {})", l.iface, l.attach)?;
        }
        writeln!(
            f,
            "  packets        {:>12}  ({:.0} pkt/s, {:.1} MB/s, {} workers)",
            st.packets,
            st.packets as f64 / secs,
            st.bytes as f64 / secs / 1e6,
            self.workers
        )?;
        writeln!(f, "  flows          {:>12}  ({:.0} flows/s)", st.flows_created, st.flows_created as f64 / secs)?;
        for (group, items) in counters(st) {
            for (name, count) in items {
                let total = count.total();
                match count {
                    Count::One(0) => {}
                    Count::One(n) => writeln!(f, "  {:<28} {n:>10}", format!("{group} {name}"))?,
                    Count::By(v) => {
                        if v.iter().all(|(_, n)| *n == 0) {
                            continue;
                        }
                        let parts: Vec<String> =
                            v.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
                        writeln!(f, "  {:<28} {:>10}  ({})", format!("{group} {name}"), total, parts.join(" · "))?;
                    }
                }
            }
        }
        if let Some(l) = &self.live {
            let xdp: Vec<String> = l.xdp.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
            if !xdp.is_empty() {
                writeln!(f, "  xdp                          {}", xdp.join(" · "))?;
            }
            let x = l.xsk;
            writeln!(
                f,
                "  kernel drops                 rx_dropped {} · rx_ring_full {} · fill_ring_empty {} · rx_invalid {} · unstamped {}",
                x.rx_dropped, x.rx_ring_full, x.fill_ring_empty, x.rx_invalid, x.unstamped
            )?;
            writeln!(f, "  output dropped lines         {:>10}", l.output_dropped)?;
        }
        if let Some(l) = self.learning {
            writeln!(
                f,
                "  learning       head v{} · {} labels {:?} · reservoir {} · held back {} · rollbacks {} · drifts {:?}",
                l.head_version, l.labels, l.outcomes, l.reservoir, l.holdout, l.rollbacks, l.drifts
            )?;
        }
        if !self.kafka.is_null() {
            writeln!(f, "  kafka          {}", self.kafka)?;
        }
        for err in self.file_errors {
            writeln!(f, "  file error: {err}")?;
        }
        if self.interrupted {
            writeln!(f, "  interrupted    by SIGINT/SIGTERM before the files ended (the flows read were written)")?;
        }
        writeln!(f, "  elapsed        {secs:>12.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(stats: &Stats) -> RunSummary<'_> {
        RunSummary {
            mode: "replay",
            stats,
            elapsed: Duration::from_secs(2),
            workers: 2,
            file_errors: &[],
            interrupted: false,
            learning: None,
            live: None,
            kafka: serde_json::Value::Null,
        }
    }

    #[test]
    fn json_and_text_come_from_the_same_counters() {
        let mut s = Stats { packets: 10, bytes: 1000, flows_created: 3, events: 2, ..Stats::default() };
        s.skip(Skip::Udp);
        s.flows_ended[EndReason::Fin as usize] = 2;
        s.detections[Class::Malware as usize] = 1;
        s.reassembly_overlaps = 4;
        let sum = summary(&s);
        let j = serde_json::to_value(&sum).expect("JSON");
        // The keys earlier versions wrote.
        assert_eq!(j["packets"], 10);
        assert_eq!(j["flows"], 3);
        assert_eq!(j["events"], 2);
        assert_eq!(j["detections"]["malware"], 1);
        assert_eq!(j["reasons"]["skipped_budget"], 0);
        assert!(j["learning"].is_null() && j["kafka"].is_null() && j.get("xdp").is_none());
        // Every counter, by stage.
        assert_eq!(j["counters"]["decode"]["skipped"]["udp"], 1);
        assert_eq!(j["counters"]["flow"]["ended"]["fin"], 2);
        assert_eq!(j["counters"]["reassembly"]["overlaps"], 4);
        let text = sum.to_string();
        assert!(text.contains("decode skipped") && text.contains("udp 1"), "{text}");
        assert!(
            text.contains("reassembly overlaps") && text.contains("flow ended") && text.contains("fin 2"),
            "{text}"
        );
        // Zero counters are left out of the text, not of the JSON.
        assert!(!text.contains("tls parse_errors"));
        assert_eq!(j["counters"]["tls"]["parse_errors"], 0);
    }
}
