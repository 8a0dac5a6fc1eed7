//! Every Prometheus metric of the sensor, described once here (names, units, help) and
//! fed from the plain per-worker [`Stats`] counters: workers never touch the `metrics`
//! facade per packet; a [`StatsPublisher`] publishes the deltas once per tick.
//!
//! Names follow `nightjar_<stage>_<name>[_<unit>]_total`. Labels are bounded sets only
//! (`queue` is the worker index, `reason`, `kind`, `error_code`, `outcome`, `decision`,
//! `class`); never addresses, ports, SNI, fingerprints or URLs. Dashboards and alert rules
//! are checked against this file.

use metrics::{counter, describe_counter, describe_gauge, gauge};
use nightjar_common::Counter as XdpCounter;

use crate::capture::KernelDrops;
use crate::decode::{DecodeError, Skip};
use crate::flow::EndReason;
use crate::inference::Class;
use crate::stats::Stats;

pub use crate::metric_names::*;

/// Registers the help text of every metric. Call once at start-up.
pub fn describe() {
    describe_counter!(CAPTURE_PACKETS, "Frames read from the capture source, per worker.");
    describe_counter!(CAPTURE_BYTES, metrics::Unit::Bytes, "Wire bytes of the frames read, per worker.");
    describe_counter!(CAPTURE_DROPPED, "Packets lost by reason: ring_full, fill_ring_empty, kernel (AF_PACKET).");
    describe_counter!(
        OUTPUT_DROPPED,
        "Output lines (events, feature lines, EVE records) dropped because the writer queue was full (live capture never waits for it)."
    );
    describe_counter!(
        CAPTURE_UNSTAMPED,
        "Frames without a per-packet kernel timestamp, per worker: AF_XDP drops them (no XDP time prefix), AF_PACKET stamps them with the reader's clock."
    );
    describe_counter!(DECODE_SKIPPED, "Frames that are not TCP, by kind (udp, icmp, other_ip, non_ip, ip_fragment).");
    describe_counter!(DECODE_ERRORS, "Frames that failed to decode, by error code.");
    describe_counter!(FLOWS_CREATED, "TCP flows created in the flow table.");
    describe_counter!(
        FLOWS_ENDED,
        "Flows whose record was written, by reason (head_complete, fin, rst, evicted, ...)."
    );
    describe_gauge!(FLOW_TABLE_FLOWS, "Flows currently tracked, per worker.");
    describe_counter!(TLS_FLOWS, "Flows whose client spoke TLS.");
    describe_counter!(HTTP_FLOWS, "Flows whose client sent an HTTP request.");
    describe_counter!(REASSEMBLY_SEGMENTS, "TCP segments by reassembly outcome (buffered, dropped, duplicate).");
    describe_counter!(
        PARSE_ERRORS,
        "Parser problems by kind (tls_handshake_truncated, tls_oversized_hello, tls_parse_error, http_oversized, http_too_many_headers)."
    );
    describe_counter!(PROXY_HEADERS, "PROXY protocol (v1/v2) headers skipped before a client's TLS or HTTP.");
    describe_counter!(EVENTS, "Flow events written.");
    describe_counter!(DETECTIONS, "Verdicts by class (benign, attack, malware, unknown).");
    describe_counter!(XDP_DECISIONS, "Decisions of the XDP program by kind, summed over CPUs.");
    metrics::describe_histogram!(INFERENCE_SECONDS, metrics::Unit::Seconds, "Wall time of one inference batch.");
    metrics::describe_histogram!(INFERENCE_BATCH, "Flows per inference batch.");
    describe_counter!(INFERENCE_ERRORS, "Inference batches that failed (their flows stay unknown).");
    describe_counter!(
        HTTP_REFUSED,
        "Connections to the sensor's HTTP endpoint closed at accept: MAX_CONNECTIONS were open."
    );
    describe_counter!(
        REASONS,
        "Flagged verdicts explained (result=explained) or left without reasons (result=skipped_budget)."
    );
    describe_gauge!(MODEL_INFO, "Always 1; the version label names the loaded model.");
    describe_gauge!(MODEL_CREATED, metrics::Unit::Seconds, "When the loaded model was exported (Unix time).");
    describe_counter!(LEARN_FEEDBACK, "Feedback labels by source and outcome.");
    describe_counter!(LEARN_UPDATES_APPLIED, "Online head updates accepted.");
    describe_counter!(LEARN_UPDATES_REJECTED, "Online head updates rejected, by reason (move_cap, shadow).");
    describe_counter!(LEARN_ROLLBACKS, "Rollbacks of the head to the last checked version.");
    describe_gauge!(
        LEARN_DRIFT_SCORE,
        "Page-Hinkley statistic over its threshold by signal (error, score); 1 = drift."
    );
    describe_counter!(LEARN_DRIFTS, "Drifts detected, by signal.");
    describe_gauge!(LEARN_HEAD_VERSION, "Version of the online-learned head the workers use (0: as trained).");
    describe_gauge!(LEARN_CACHED_FLOWS, "Scored flows kept for feedback by flow id.");
    describe_counter!(LEARN_SCORED_DROPPED, "Scored flows not handed to the learner (its queue was full).");
    describe_counter!(LEARN_CHECKPOINTS, "Learner checkpoints written.");
    describe_counter!(LEARN_CHECKPOINT_ERRORS, "Learner checkpoint failures by operation (save, load).");
    describe_counter!(MODEL_RELOADS, "Full-model swaps by result (ok, refused).");
    describe_counter!(KAFKA_MESSAGES, "Kafka event messages by delivery result (delivered, failed).");
    describe_counter!(
        KAFKA_DROPPED,
        "Events not queued for Kafka, by reason (queue_full while the broker is away, ...)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which build runs.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Publishes the growth of one worker's [`Stats`] since the last call.
#[derive(Debug)]
pub struct StatsPublisher {
    queue: String,
    last: Stats,
    last_drops: KernelDrops,
}

impl StatsPublisher {
    /// A publisher for the worker labelled `queue`.
    pub fn new(queue: usize) -> Self {
        Self { queue: queue.to_string(), last: Stats::default(), last_drops: KernelDrops::default() }
    }

    /// Adds the counters' growth since the last call, and sets the table gauge.
    pub fn publish(&mut self, s: &Stats, tracked_flows: usize, drops: KernelDrops) {
        let l = &self.last;
        let q = self.queue.clone();
        counter!(CAPTURE_PACKETS, "queue" => q.clone()).increment(s.packets - l.packets);
        counter!(CAPTURE_BYTES, "queue" => q.clone()).increment(s.bytes - l.bytes);
        gauge!(FLOW_TABLE_FLOWS, "queue" => q).set(tracked_flows as f64);
        for (i, k) in Skip::ALL.iter().enumerate() {
            counter!(DECODE_SKIPPED, "kind" => k.as_str()).increment(s.skipped[i] - l.skipped[i]);
        }
        for (i, e) in DecodeError::ALL.iter().enumerate() {
            counter!(DECODE_ERRORS, "error_code" => e.as_str()).increment(s.decode_errors[i] - l.decode_errors[i]);
        }
        counter!(FLOWS_CREATED).increment(s.flows_created - l.flows_created);
        for (i, r) in EndReason::ALL.iter().enumerate() {
            counter!(FLOWS_ENDED, "reason" => r.as_str()).increment(s.flows_ended[i] - l.flows_ended[i]);
        }
        counter!(TLS_FLOWS).increment(s.tls_flows - l.tls_flows);
        counter!(HTTP_FLOWS).increment(s.http_flows - l.http_flows);
        for (outcome, now, before) in [
            ("buffered", s.reassembly_buffered, l.reassembly_buffered),
            ("dropped", s.reassembly_dropped, l.reassembly_dropped),
            ("duplicate", s.reassembly_duplicates, l.reassembly_duplicates),
            ("overlap", s.reassembly_overlaps, l.reassembly_overlaps),
        ] {
            counter!(REASSEMBLY_SEGMENTS, "outcome" => outcome).increment(now - before);
        }
        for (kind, now, before) in [
            ("tls_handshake_truncated", s.tls_handshake_truncated, l.tls_handshake_truncated),
            ("tls_oversized_hello", s.tls_oversized_hello, l.tls_oversized_hello),
            ("tls_parse_error", s.tls_parse_errors, l.tls_parse_errors),
            ("http_oversized", s.http_oversized, l.http_oversized),
            ("http_too_many_headers", s.http_too_many_headers, l.http_too_many_headers),
        ] {
            counter!(PARSE_ERRORS, "kind" => kind).increment(now - before);
        }
        counter!(PROXY_HEADERS).increment(s.proxy_headers - l.proxy_headers);
        counter!(EVENTS).increment(s.events - l.events);
        for c in Class::ALL {
            counter!(DETECTIONS, "class" => c.as_str()).increment(s.detections[c as usize] - l.detections[c as usize]);
        }
        counter!(INFERENCE_ERRORS).increment(s.inference_errors - l.inference_errors);
        counter!(REASONS, "result" => "explained").increment(s.explained - l.explained);
        counter!(REASONS, "result" => "skipped_budget").increment(s.reasons_skipped - l.reasons_skipped);
        let d = &self.last_drops;
        for (reason, now, before) in [
            ("ring_full", drops.rx_ring_full, d.rx_ring_full),
            ("fill_ring_empty", drops.fill_ring_empty, d.fill_ring_empty),
            ("kernel", drops.rx_dropped, d.rx_dropped),
        ] {
            counter!(CAPTURE_DROPPED, "reason" => reason).increment(now.saturating_sub(before));
        }
        counter!(CAPTURE_UNSTAMPED, "queue" => self.queue.clone())
            .increment(drops.unstamped.saturating_sub(d.unstamped));
        self.last = s.clone();
        self.last_drops = drops;
    }
}

/// Publishes the XDP program's counters (absolute values, summed over CPUs).
pub fn publish_xdp(values: &[u64; XdpCounter::COUNT as usize]) {
    for c in XdpCounter::ALL {
        counter!(XDP_DECISIONS, "decision" => c.as_str()).absolute(values[c as usize]);
    }
}

/// Publishes which model is loaded and when it was made.
pub fn model_info(version: &str, created_unix: u64) {
    static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    if let Ok(mut last) = LAST.lock() {
        // A swapped-out model's series drops to 0, so `max by (version)` names one model.
        if let Some(old) = last.replace(version.to_owned())
            && old != version
        {
            gauge!(MODEL_INFO, "version" => old).set(0.0);
        }
    }
    gauge!(MODEL_INFO, "version" => version.to_owned()).set(1.0);
    gauge!(MODEL_CREATED).set(created_unix as f64);
}

/// Counts output lines dropped because the writer queue was full.
pub fn output_dropped(n: u64) {
    counter!(OUTPUT_DROPPED).increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn publishes_deltas_with_bounded_labels() {
        let rec = DebuggingRecorder::new();
        let snap = rec.snapshotter();
        metrics::with_local_recorder(&rec, || {
            let mut p = StatsPublisher::new(0);
            let mut s = Stats { packets: 10, bytes: 1000, flows_created: 2, events: 1, ..Stats::default() };
            s.flows_ended[EndReason::Fin as usize] = 1;
            p.publish(&s, 2, KernelDrops::default());
            s.packets = 15;
            p.publish(&s, 1, KernelDrops { rx_ring_full: 3, ..KernelDrops::default() });
        });
        let values = snap.snapshot().into_vec();
        let get = |name: &str, label: Option<(&str, &str)>| {
            values
                .iter()
                .find(|(k, _, _, _)| {
                    k.key().name() == name
                        && label.is_none_or(|(lk, lv)| k.key().labels().any(|l| l.key() == lk && l.value() == lv))
                })
                .map(|(_, _, _, v)| v)
        };
        assert_eq!(get(CAPTURE_PACKETS, Some(("queue", "0"))), Some(&DebugValue::Counter(15)));
        assert_eq!(get(FLOWS_ENDED, Some(("reason", "fin"))), Some(&DebugValue::Counter(1)));
        assert_eq!(get(CAPTURE_DROPPED, Some(("reason", "ring_full"))), Some(&DebugValue::Counter(3)));
        // Every label value comes from a fixed set.
        let allowed = ["queue", "reason", "kind", "error_code", "outcome", "class", "decision", "version", "result"];
        for (k, _, _, _) in &values {
            for l in k.key().labels() {
                assert!(allowed.contains(&l.key()), "unbounded label {}", l.key());
            }
        }
    }
}
