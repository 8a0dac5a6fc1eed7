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
    /// Adds `other` into `self`. `other` is taken apart field by field, so a counter added
    /// to [`Stats`] and not merged here does not compile.
    pub fn merge(&mut self, o: &Stats) {
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
        } = *o;
        self.packets += packets;
        self.bytes += bytes;
        self.tcp_packets += tcp_packets;
        add_each(&mut self.skipped, &skipped);
        add_each(&mut self.decode_errors, &decode_errors);
        self.truncated_payloads += truncated_payloads;
        self.flows_created += flows_created;
        add_each(&mut self.flows_ended, &flows_ended);
        self.tls_flows += tls_flows;
        self.http_flows += http_flows;
        self.reassembly_buffered += reassembly_buffered;
        self.reassembly_dropped += reassembly_dropped;
        self.reassembly_duplicates += reassembly_duplicates;
        self.reassembly_overlaps += reassembly_overlaps;
        self.tls_handshake_truncated += tls_handshake_truncated;
        self.tls_oversized_hello += tls_oversized_hello;
        self.tls_parse_errors += tls_parse_errors;
        self.http_oversized += http_oversized;
        self.http_too_many_headers += http_too_many_headers;
        self.proxy_headers += proxy_headers;
        self.events += events;
        add_each(&mut self.detections, &detections);
        self.inference_batches += inference_batches;
        self.inferred_flows += inferred_flows;
        self.inference_errors += inference_errors;
        self.explained += explained;
        self.reasons_skipped += reasons_skipped;
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

/// Adds `b` into `a`, element by element.
fn add_each<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
