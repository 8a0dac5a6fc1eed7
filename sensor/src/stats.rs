//! Plain per-worker counters. Each worker owns one [`Stats`] and bumps it without
//! atomics on the hot path; the runtime merges them for the summary and the metrics
//! exporter. Every dropped or skipped packet lands in exactly one counter here.

use crate::decode::{DecodeError, Skip};

/// Kinds of flow end (`flow::EndReason::ALL`; the flow table, which imports this module,
/// checks the two agree at compile time: counters do not import the stage they count).
pub const END_REASONS: usize = 9;

/// Counters of one worker (or the sum over workers).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Frames read from the source.
    pub packets: u64,
    /// Bytes of those frames on the wire.
    pub bytes: u64,
    /// TCP segments handed to the flow table.
    pub tcp_packets: u64,
    /// Frames skipped as not for the TCP pipeline, by [`Skip`] kind.
    pub skipped: [u64; Skip::ALL.len()],
    /// Frames that failed to decode, by [`DecodeError`] kind.
    pub decode_errors: [u64; DecodeError::ALL.len()],
    /// TCP segments whose payload the capture cut short.
    pub truncated_payloads: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows ended, by `flow::EndReason` (its discriminant).
    pub flows_ended: [u64; END_REASONS],
    /// Flows whose client sent a TLS handshake.
    pub tls_flows: u64,
    /// Flows whose client sent an HTTP request.
    pub http_flows: u64,
    /// Segments ahead of a gap, buffered.
    pub reassembly_buffered: u64,
    /// Segments ahead of a gap, dropped over the budget.
    pub reassembly_dropped: u64,
    /// Segments fully retransmitted.
    pub reassembly_duplicates: u64,
    /// Segments that partly overlapped bytes already kept (the first copy won).
    pub reassembly_overlaps: u64,
    /// TLS handshake messages skipped because they exceeded the buffer.
    pub tls_handshake_truncated: u64,
    /// ClientHellos larger than `handshake_bytes` (parsed up to 64 KiB, flagged).
    pub tls_oversized_hello: u64,
    /// TLS handshake messages that failed to parse.
    pub tls_parse_errors: u64,
    /// HTTP request heads over the buffer.
    pub http_oversized: u64,
    /// HTTP request heads with more than `decode::http::MAX_HEADERS` headers.
    pub http_too_many_headers: u64,
    /// PROXY protocol headers skipped before a client's first bytes.
    pub proxy_headers: u64,
    /// Events written.
    pub events: u64,
    /// Classified flows written, by verdict class (benign, attack, malware, unknown).
    pub detections: [u64; 4],
    /// Inference batches run.
    pub inference_batches: u64,
    /// Flows that went through the model.
    pub inferred_flows: u64,
    /// Batches that failed (their flows keep the `unknown` verdict).
    pub inference_errors: u64,
    /// Flagged verdicts explained (`verdict.reasons`).
    pub explained: u64,
    /// Flagged verdicts left without reasons: the explanation budget was spent.
    pub reasons_skipped: u64,
}

impl Stats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, o: &Stats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.tcp_packets += o.tcp_packets;
        for (a, b) in self.skipped.iter_mut().zip(o.skipped) {
            *a += b;
        }
        for (a, b) in self.decode_errors.iter_mut().zip(o.decode_errors) {
            *a += b;
        }
        for (a, b) in self.flows_ended.iter_mut().zip(o.flows_ended) {
            *a += b;
        }
        self.truncated_payloads += o.truncated_payloads;
        self.flows_created += o.flows_created;
        self.tls_flows += o.tls_flows;
        self.http_flows += o.http_flows;
        self.reassembly_buffered += o.reassembly_buffered;
        self.reassembly_dropped += o.reassembly_dropped;
        self.reassembly_duplicates += o.reassembly_duplicates;
        self.reassembly_overlaps += o.reassembly_overlaps;
        self.tls_handshake_truncated += o.tls_handshake_truncated;
        self.tls_oversized_hello += o.tls_oversized_hello;
        self.tls_parse_errors += o.tls_parse_errors;
        self.http_oversized += o.http_oversized;
        self.proxy_headers += o.proxy_headers;
        self.http_too_many_headers += o.http_too_many_headers;
        self.events += o.events;
        for (a, b) in self.detections.iter_mut().zip(o.detections) {
            *a += b;
        }
        self.inference_batches += o.inference_batches;
        self.inferred_flows += o.inferred_flows;
        self.inference_errors += o.inference_errors;
        self.explained += o.explained;
        self.reasons_skipped += o.reasons_skipped;
    }

    /// Counts a skipped frame.
    pub fn skip(&mut self, s: Skip) {
        self.skipped[s as usize] += 1;
    }

    /// Counts a decode error.
    pub fn decode_error(&mut self, e: DecodeError) {
        self.decode_errors[e as usize] += 1;
    }

    /// Total flows ended for any reason.
    pub fn flows_ended_total(&self) -> u64 {
        self.flows_ended.iter().sum()
    }

    /// Total frames that failed to decode.
    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors.iter().sum()
    }
}
