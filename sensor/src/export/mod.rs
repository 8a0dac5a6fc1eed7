//! Stage 7: export. Takes finished flows with their features and verdicts and writes
//! them out: one JSON event per flow ([`event`]), Suricata EVE records ([`eve`]) and, for
//! `model/`, one feature line per flow ([`features_line`]). Serialisation runs on the
//! workers into reusable [`lines::Lines`] batches that keep each line's key (the flow's
//! Community ID); a single writer thread hands the batches to the sinks, which all
//! implement [`lines::LineSink`] (files and stdout, [`kafka`] keyed from the batch).
//!
//! Takes [`FlowEvent`]s; yields lines. Must not change a verdict or a record, and must not
//! block a worker on a sink (the writer thread and its policy decide that).

pub mod eve;
pub mod event;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod live;
pub mod metrics;

use serde::Serialize;

use crate::features::{FeatureVector, SCHEMA_VERSION};
use crate::fingerprint::Fingerprints;
use crate::flow::FlowRecord;
use crate::inference::Verdict;

/// One line of the `--features` file: identity, 5-tuple, start time and the vector.
#[derive(Serialize)]
struct FeaturesLine<'a> {
    schema_version: u32,
    flow_id: u64,
    community_id: &'a str,
    client_ip: std::net::IpAddr,
    client_port: u16,
    server_ip: std::net::IpAddr,
    server_port: u16,
    start_ts: f64,
    app: &'a str,
    #[serde(flatten)]
    features: &'a FeatureVector,
}

/// One finished flow as every output sees it: the record, its features (when computed),
/// its fingerprints (computed once, for the event, the EVE records and the learner's
/// intel lookup) and its verdict. The serialisers below write it; the sinks get their
/// lines ([`lines::Lines`]) with the flow's Community ID as key.
#[derive(Debug)]
pub struct FlowEvent {
    /// What flow saw.
    pub record: FlowRecord,
    /// Model features (computed for the model or the feature lines).
    pub features: Option<FeatureVector>,
    /// JA3/JA3S/JA4 of the handshake, computed once.
    pub fingerprints: Fingerprints,
    /// The decision (`unknown` until the model has run).
    pub verdict: Verdict,
}

impl FlowEvent {
    /// An event whose verdict is not known yet.
    pub fn new(record: FlowRecord, features: Option<FeatureVector>, fingerprints: Fingerprints) -> Self {
        Self { record, features, fingerprints, verdict: Verdict::unknown() }
    }

    /// Appends the JSON event line ([`event`]).
    pub fn write_json(&self, community_id: &str, out: &mut Vec<u8>) {
        event::write_event_with(&self.record, &self.fingerprints, community_id, &self.verdict, out);
    }

    /// Appends the Suricata EVE records of `types` ([`eve`]).
    pub fn write_eve(&self, community_id: &str, types: eve::EveTypes, out: &mut Vec<u8>) {
        eve::write_eve_with(&self.record, &self.fingerprints, community_id, &self.verdict, types, out);
    }

    /// Appends the feature line, when features were computed.
    pub fn write_features(&self, community_id: &str, out: &mut Vec<u8>) {
        if let Some(fv) = &self.features {
            features_line(&self.record, community_id, fv, out);
        }
    }
}

/// Appends one JSON line of features to `out`.
pub fn features_line(flow: &FlowRecord, community_id: &str, fv: &FeatureVector, out: &mut Vec<u8>) {
    let line = FeaturesLine {
        schema_version: SCHEMA_VERSION,
        flow_id: flow.id,
        community_id,
        client_ip: flow.client_ip,
        client_port: flow.client_port,
        server_ip: flow.server_ip,
        server_port: flow.server_port,
        start_ts: flow.first_ts as f64 / 1e9,
        app: flow.app.as_str(),
        features: fv,
    };
    // Serialising plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}
