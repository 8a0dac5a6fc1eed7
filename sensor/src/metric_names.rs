//! Every metric's name (and the histogram buckets), in a module that imports nothing, so
//! that any stage can count under a name without depending on the exporter. The help
//! texts and the publishing live in `export::metrics`.

/// Frames read, per worker (`queue`).
pub const CAPTURE_PACKETS: &str = "nightjar_capture_packets_total";
/// Bytes of those frames on the wire, per worker.
pub const CAPTURE_BYTES: &str = "nightjar_capture_bytes_total";
/// Packets lost before or after capture, by `reason`.
pub const CAPTURE_DROPPED: &str = "nightjar_capture_dropped_packets_total";
/// Output lines (events, feature lines, EVE records) dropped because the writer was behind.
pub const OUTPUT_DROPPED: &str = "nightjar_output_dropped_lines_total";
/// Frames without a per-packet kernel timestamp, per worker.
pub const CAPTURE_UNSTAMPED: &str = "nightjar_capture_unstamped_frames_total";
/// Frames skipped as not TCP, by `kind`.
pub const DECODE_SKIPPED: &str = "nightjar_decode_skipped_packets_total";
/// Frames that failed to decode, by `error_code`.
pub const DECODE_ERRORS: &str = "nightjar_decode_errors_total";
/// Flows created.
pub const FLOWS_CREATED: &str = "nightjar_flows_created_total";
/// Flows whose record was written, by `reason`.
pub const FLOWS_ENDED: &str = "nightjar_flows_ended_total";
/// Flows currently tracked, per worker.
pub const FLOW_TABLE_FLOWS: &str = "nightjar_flow_table_flows";
/// TLS flows seen.
pub const TLS_FLOWS: &str = "nightjar_tls_flows_total";
/// HTTP flows seen.
pub const HTTP_FLOWS: &str = "nightjar_http_flows_total";
/// TCP segments by reassembly `outcome` (buffered, dropped, duplicate).
pub const REASSEMBLY_SEGMENTS: &str = "nightjar_reassembly_segments_total";
/// Parser problems by `kind`.
pub const PARSE_ERRORS: &str = "nightjar_parse_errors_total";
/// Counter: PROXY protocol headers skipped before a client's first bytes.
pub const PROXY_HEADERS: &str = "nightjar_flow_proxy_headers_total";
/// Flow events written.
pub const EVENTS: &str = "nightjar_events_total";
/// Verdicts by `class`.
pub const DETECTIONS: &str = "nightjar_detections_total";
/// XDP program decisions by `decision`.
pub const XDP_DECISIONS: &str = "nightjar_xdp_decisions_total";
/// Histogram: wall time of one inference batch.
pub const INFERENCE_SECONDS: &str = "nightjar_inference_duration_seconds";
/// Histogram: flows per inference batch.
pub const INFERENCE_BATCH: &str = "nightjar_inference_batch_size";
/// Counter: inference batches that failed.
pub const INFERENCE_ERRORS: &str = "nightjar_inference_errors_total";
/// Counter: flagged verdicts explained (`verdict.reasons`), and left unexplained because
/// the explanation budget (`model.reasons_budget`) was spent.
pub const REASONS: &str = "nightjar_verdict_reasons_total";
/// Counter: HTTP requests refused because no thread could be started for them.
pub const HTTP_REFUSED: &str = "nightjar_http_refused_total";
/// Gauge: 1 for the loaded model, labelled with its version.
pub const MODEL_INFO: &str = "nightjar_model_info";
/// Gauge: when the loaded model was exported (Unix seconds).
pub const MODEL_CREATED: &str = "nightjar_model_created_timestamp_seconds";
/// Histogram buckets of [`INFERENCE_SECONDS`].
pub const INFERENCE_SECONDS_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
/// Histogram buckets of [`INFERENCE_BATCH`].
pub const INFERENCE_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Counter: labels by source (configured names, else `other`) and outcome (applied,
/// held_back, rate_limited, unknown_source, unknown_flow, invalid, move_cap, shadow).
pub const LEARN_FEEDBACK: &str = "nightjar_learning_feedback_total";
/// Counter: head updates accepted.
pub const LEARN_UPDATES_APPLIED: &str = "nightjar_learning_updates_applied_total";
/// Counter: head updates rejected, by reason (move_cap, shadow).
pub const LEARN_UPDATES_REJECTED: &str = "nightjar_learning_updates_rejected_total";
/// Counter: rollbacks to the last checked head.
pub const LEARN_ROLLBACKS: &str = "nightjar_learning_rollbacks_total";
/// Gauge: Page-Hinkley statistic over its threshold, by signal (error, score).
pub const LEARN_DRIFT_SCORE: &str = "nightjar_learning_drift_score";
/// Counter: drifts detected, by signal.
pub const LEARN_DRIFTS: &str = "nightjar_learning_drift_detected_total";
/// Gauge: version of the head the workers score with.
pub const LEARN_HEAD_VERSION: &str = "nightjar_learning_head_version";
/// Gauge: flows in the feedback cache.
pub const LEARN_CACHED_FLOWS: &str = "nightjar_learning_cached_flows";
/// Counter: scored flows the learner's queue could not take.
pub const LEARN_SCORED_DROPPED: &str = "nightjar_learning_scored_dropped_total";
/// Counter: checkpoints written.
pub const LEARN_CHECKPOINTS: &str = "nightjar_learning_checkpoints_total";
/// Counter: checkpoint failures by operation (save, load).
pub const LEARN_CHECKPOINT_ERRORS: &str = "nightjar_learning_checkpoint_errors_total";
/// Counter: full-model swaps by result (ok, refused).
pub const MODEL_RELOADS: &str = "nightjar_model_reloads_total";
/// Counter: Kafka messages by delivery result (delivered, failed).
pub const KAFKA_MESSAGES: &str = "nightjar_kafka_messages_total";
/// Counter: events not handed to Kafka, by reason (queue_full, too_large, malformed, error).
pub const KAFKA_DROPPED: &str = "nightjar_kafka_dropped_total";
/// Always 1, with the version as a label.
pub const BUILD_INFO: &str = "nightjar_build_info";
