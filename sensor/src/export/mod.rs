//! Stage 7: export. Takes finished flows with their features and verdicts and writes
//! them out: one JSON event per flow ([`event`]), Suricata EVE records ([`eve`]) and, for
//! `model/`, one feature line per flow ([`features_line`]). Serialisation runs on the
//! workers into reusable [`lines::Lines`] batches that keep each line's key (the flow's
//! Community ID); a single writer thread hands the batches to the sinks, which all
//! implement [`lines::LineSink`] (files and stdout, [`kafka`] keyed from the batch).

pub mod eve;
pub mod event;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod live;
pub mod metrics;

use serde::Serialize;

use crate::features::{FeatureVector, SCHEMA_VERSION};
use crate::flow::FlowRecord;

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
