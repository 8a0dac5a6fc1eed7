//! The one configuration tree of the sensor. Loaded from TOML once at start-up,
//! validated, then read-only. Every field has a default, so an empty file (or none)
//! is a working configuration. The CLI overrides a few fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Top-level configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Flow table and reassembly limits.
    pub flow: FlowConfig,
    /// Worker threads.
    pub runtime: RuntimeConfig,
    /// The classifier.
    pub model: ModelConfig,
}

/// The classifier and its micro-batches.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Run the classifier. Default true; without it every verdict is `unknown`.
    pub enabled: bool,
    /// Model metadata file (`nightjar.json`, ONNX files beside it). Default: the model
    /// embedded in the binary.
    pub path: Option<std::path::PathBuf>,
    /// Model variant (`float` or `int8`). Default: the one the metadata names.
    pub variant: Option<String>,
    /// Flows per inference batch. Default 32.
    pub batch_size: usize,
    /// Longest a flow waits for its batch to fill before a partial batch runs,
    /// milliseconds. Default 5.
    pub max_wait_ms: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { enabled: true, path: None, variant: None, batch_size: 32, max_wait_ms: 5 }
    }
}

/// Flow table, timeouts and reassembly bounds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Maximum concurrently tracked flows, summed over all workers. When full, the
    /// least recently seen flow is evicted (and counted). Default 1,000,000.
    pub max_flows: usize,
    /// An answered flow (packets seen both ways) with no packet for this long ends,
    /// seconds. Default 600 (interactive sessions idle for minutes).
    pub idle_timeout_secs: u64,
    /// A flow seen in one direction only (a scan, a lost SYN-ACK) with no packet for this
    /// long ends, seconds. Default 60.
    pub unanswered_timeout_secs: u64,
    /// A flow that lives this long without having written its event writes it, seconds.
    /// Default 3600.
    pub active_timeout_secs: u64,
    /// After FIN from both sides or an RST, the flow is kept this long to absorb
    /// trailing packets and retransmissions, seconds. Default 30.
    pub closed_linger_secs: u64,
    /// Packets (both directions) that make a flow head; the event is written when the
    /// head is complete. Default 32.
    pub head_packets: usize,
    /// Bytes of out-of-order TCP data buffered per direction. Default 16384.
    pub reassembly_bytes: usize,
    /// Bytes of TLS handshake messages buffered per direction. Default 16384.
    pub handshake_bytes: usize,
    /// Bytes of an HTTP request head (request line + headers) buffered. Default 8192.
    pub http_header_bytes: usize,
    /// Bytes of the HTTP request body kept for features. Default 256.
    pub http_body_bytes: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_flows: 1_000_000,
            idle_timeout_secs: 600,
            unanswered_timeout_secs: 60,
            active_timeout_secs: 3600,
            closed_linger_secs: 30,
            head_packets: 32,
            reassembly_bytes: 16 * 1024,
            handshake_bytes: 16 * 1024,
            http_header_bytes: 8 * 1024,
            http_body_bytes: 256,
        }
    }
}

/// How the pipeline runs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; 0 means one per available core. Default 0.
    pub workers: usize,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let cfg: Config =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.flow;
        let check = |ok: bool, field: &'static str, reason: &str| {
            if ok { Ok(()) } else { Err(ConfigError::Invalid { field, reason: reason.into() }) }
        };
        check(f.max_flows >= 1, "flow.max_flows", "must be at least 1")?;
        check((1..=1024).contains(&f.head_packets), "flow.head_packets", "must be 1..=1024")?;
        check(f.idle_timeout_secs >= 1, "flow.idle_timeout_secs", "must be at least 1")?;
        check(f.unanswered_timeout_secs >= 1, "flow.unanswered_timeout_secs", "must be at least 1")?;
        check(f.active_timeout_secs >= 1, "flow.active_timeout_secs", "must be at least 1")?;
        check(f.reassembly_bytes <= 1 << 24, "flow.reassembly_bytes", "must be at most 16 MiB")?;
        check((512..=1 << 24).contains(&f.handshake_bytes), "flow.handshake_bytes", "must be 512 B..=16 MiB")?;
        check((64..=1 << 20).contains(&f.http_header_bytes), "flow.http_header_bytes", "must be 64 B..=1 MiB")?;
        check(f.http_body_bytes <= 1 << 16, "flow.http_body_bytes", "must be at most 64 KiB")?;
        let m = &self.model;
        check((1..=1024).contains(&m.batch_size), "model.batch_size", "must be 1..=1024")?;
        check(m.max_wait_ms <= 10_000, "model.max_wait_ms", "must be at most 10000")?;
        check(
            m.variant.as_deref().is_none_or(|v| v == "float" || v == "int8"),
            "model.variant",
            "must be float or int8",
        )?;
        Ok(())
    }

    /// Worker count after resolving 0 to the number of available cores.
    pub fn worker_count(&self) -> usize {
        if self.runtime.workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        } else {
            self.runtime.workers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default_and_valid() {
        let cfg: Config = toml::from_str("").expect("parse");
        cfg.validate().expect("valid");
        assert_eq!(cfg.flow.head_packets, 32);
    }

    #[test]
    fn unknown_fields_and_bad_ranges_are_refused() {
        assert!(toml::from_str::<Config>("[flow]\nmax_flow = 3\n").is_err());
        let cfg: Config = toml::from_str("[flow]\nhead_packets = 0\n").expect("parse");
        let err = cfg.validate().expect_err("must fail").to_string();
        assert!(err.contains("flow.head_packets"), "{err}");
    }
}
