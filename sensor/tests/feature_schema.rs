//! The feature schema is a contract with `model/`: the committed
//! `model/feature_schema.json` must describe exactly what `features` computes.
//! Regenerate it with `nightjar schema --output model/feature_schema.json` (and bump
//! `SCHEMA_VERSION`) when the features change.

use nightjar::features::{CHARS, FEATURE_NAMES, PACKET_COLUMNS, RECORD_COLUMNS, SCHEMA_VERSION, SEQ_LEN, url};

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/feature_schema.json");
    let text = std::fs::read_to_string(path).expect("model/feature_schema.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["schema_version"], SCHEMA_VERSION, "bump both sides together");
    let names: Vec<String> =
        serde_json::from_value(v["static_features"].clone()).expect("static_features is a list of names");
    assert_eq!(names, *FEATURE_NAMES, "static feature names or order differ: regenerate the schema");
    assert_eq!(v["sequence_length"], SEQ_LEN);
    assert_eq!(v["packet_columns"], serde_json::json!(PACKET_COLUMNS));
    assert_eq!(v["record_columns"], serde_json::json!(RECORD_COLUMNS));
    assert_eq!(v["url_tokens"]["max_tokens"], url::MAX_TOKENS);
    assert_eq!(v["chars"]["max_len"], CHARS);
    // The classifier reads a flow's app from the first two static features.
    assert_eq!(FEATURE_NAMES[..2], ["app_tls", "app_http"]);
}
