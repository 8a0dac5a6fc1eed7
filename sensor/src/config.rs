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
    /// Online learning of the classifier head from labelled feedback.
    pub learning: LearningConfig,
}

/// One source of labels: how much its labels count and how fast it may send them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Weight of this source's labels in an update, (0, 1]. Default 1.
    pub weight: f32,
    /// Labels per hour this source may apply (token bucket; capture time in replay, wall
    /// time live). Default 3600.
    pub labels_per_hour: u32,
    /// Labels it may send at once (the bucket size). Default 600.
    pub burst: u32,
    /// Bearer token that identifies this source on `POST /feedback`. Without one the
    /// source cannot use the API.
    pub token: Option<String>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self { weight: 1.0, labels_per_hour: 3600, burst: 600, token: None }
    }
}

/// What the sensor does when drift is detected.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// Say so (log line and metrics) and keep learning.
    #[default]
    Log,
    /// Also reload the model file from `model.path` (a retrained model dropped there).
    Reload,
}

/// Online learning (see the README's "Online learning" section).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Learn from feedback (needs a model). Default true.
    pub enabled: bool,
    /// Directory of the learner's checkpoints (`learner.ckpt`, `learner.ckpt.prev`) and
    /// of `feedback.csv`, the labels that passed the source checks (for retraining).
    /// Default: none (nothing survives a restart).
    pub state_dir: Option<std::path::PathBuf>,
    /// SGD step size, (0, 1]. Default 0.3.
    pub learning_rate: f32,
    /// SGD steps per label. Default 24.
    pub steps_per_label: usize,
    /// Reservoir examples per class in each step (class-balanced replay). Default 32.
    pub batch_per_class: usize,
    /// How many times the new example is repeated in each step. Default 8.
    pub repeat_new: usize,
    /// Hidden units of the head's residual layer. Default 16.
    pub hidden_units: usize,
    /// Labelled examples kept per class for replay. Default 1000.
    pub reservoir_per_class: usize,
    /// Every n-th label of a source is held back for shadow evaluation instead of
    /// training. Default 5.
    pub holdout_every: u32,
    /// Held-back labels kept per source. Default 512.
    pub holdout_per_source: usize,
    /// An update is rejected when, on any evaluation pool, benign precision, malware
    /// recall or macro F1 falls by more than this. Default 0.05.
    pub shadow_tolerance: f32,
    /// Smallest held-back pool that counts in the shadow evaluation. Default 50.
    pub shadow_min_flows: usize,
    /// Every this many held-back labels, the head is compared with the last checked one
    /// on all pools and rolled back if worse. Default 25.
    pub rollback_check_every: usize,
    /// Largest distance the head may move from where it was at the start of the hour,
    /// relative to the norm of the trained layer. Default 6.0.
    pub max_move_per_hour: f32,
    /// Recent flows whose embeddings are kept for feedback by flow id. Default 65536.
    pub cache_flows: usize,
    /// Checkpoint after this many accepted updates. Default 25.
    pub checkpoint_every_updates: u64,
    /// ... or after this many seconds with unsaved updates. Default 60.
    pub checkpoint_interval_secs: u64,
    /// Page-Hinkley tolerance (`delta`) for both drift detectors. Default 0.005.
    pub drift_delta: f64,
    /// Page-Hinkley threshold on the feedback error stream. Default 25.
    pub drift_error_lambda: f64,
    /// Page-Hinkley threshold on the score-uncertainty stream. Default 50.
    pub drift_score_lambda: f64,
    /// What to do on drift. Default `log`.
    pub on_drift: DriftAction,
    /// Seed of the head's residual layer and of replay sampling (updates are reproducible).
    pub seed: u64,
    /// Label sources by name. Defaults: `file` (weight 1, 3600/h), `intel` (weight 0.2,
    /// 600/h), `api` (weight 1, 1200/h, no token: the API refuses feedback until one is
    /// set). A file's `[learning.sources.NAME]` changes only the fields it names: the
    /// other fields keep that source's defaults (a new source starts from `file`'s), and
    /// the sources it does not name stay.
    #[serde(deserialize_with = "sources_over_defaults")]
    pub sources: std::collections::BTreeMap<String, SourceConfig>,
    /// Threat-intel fingerprint lists turned into weak `malware` labels (source `intel`).
    pub intel: IntelConfig,
}

/// Fingerprint blocklists (abuse.ch SSLBL CSV format: the first column is the hash,
/// `#` lines are comments).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelConfig {
    /// JA3 MD5 lists.
    pub ja3: Vec<std::path::PathBuf>,
    /// JA4 lists.
    pub ja4: Vec<std::path::PathBuf>,
    /// Server certificate SHA-1 lists.
    pub cert_sha1: Vec<std::path::PathBuf>,
}

/// The built-in label sources with their defaults.
fn default_sources() -> std::collections::BTreeMap<String, SourceConfig> {
    let mut sources = std::collections::BTreeMap::new();
    sources.insert("file".to_owned(), SourceConfig::default());
    sources.insert("intel".to_owned(), SourceConfig { weight: 0.2, labels_per_hour: 600, burst: 100, token: None });
    sources.insert("api".to_owned(), SourceConfig { labels_per_hour: 1200, burst: 200, ..SourceConfig::default() });
    sources
}

/// A source as a file writes it: only the fields it names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceOverride {
    weight: Option<f32>,
    labels_per_hour: Option<u32>,
    burst: Option<u32>,
    token: Option<String>,
}

/// `learning.sources`: the file's fields over each source's defaults.
fn sources_over_defaults<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, SourceConfig>, D::Error> {
    let given: std::collections::BTreeMap<String, SourceOverride> = Deserialize::deserialize(d)?;
    let mut sources = default_sources();
    for (name, o) in given {
        let base = sources.get(&name).cloned().unwrap_or_default();
        sources.insert(
            name,
            SourceConfig {
                weight: o.weight.unwrap_or(base.weight),
                labels_per_hour: o.labels_per_hour.unwrap_or(base.labels_per_hour),
                burst: o.burst.unwrap_or(base.burst),
                token: o.token.or(base.token),
            },
        );
    }
    Ok(sources)
}

impl Default for LearningConfig {
    fn default() -> Self {
        let sources = default_sources();
        Self {
            enabled: true,
            state_dir: None,
            learning_rate: 0.3,
            steps_per_label: 48,
            batch_per_class: 32,
            repeat_new: 8,
            hidden_units: 16,
            reservoir_per_class: 1000,
            holdout_every: 5,
            holdout_per_source: 512,
            shadow_tolerance: 0.05,
            shadow_min_flows: 50,
            rollback_check_every: 25,
            max_move_per_hour: 40.0,
            cache_flows: 65536,
            checkpoint_every_updates: 25,
            checkpoint_interval_secs: 60,
            drift_delta: 0.005,
            drift_error_lambda: 25.0,
            drift_score_lambda: 50.0,
            on_drift: DriftAction::Log,
            seed: 0x6e6a,
            sources,
            intel: IntelConfig::default(),
        }
    }
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
    /// Explain every verdict that is not benign (`verdict.reasons`: occlusion over input
    /// groups, one extra inference row per group for flagged flows only). Default true.
    pub reasons: bool,
    /// Inference rows the explanations may add, as a share of the flows classified
    /// (a token bucket with a burst of [`REASONS_BURST_ROWS`]): beyond it flagged verdicts go
    /// without reasons, counted, so a flood of flagged flows cannot multiply the cost of
    /// inference. Default 0.05 (`benches/reasons_cost.sh`: 7 % more replay time when
    /// nearly half the flows are flagged; README "Performance").
    pub reasons_budget: f64,
}

/// Longest configuration file read, bytes.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Longest model metadata file (`nightjar.json`) read, bytes.
pub const MAX_MODEL_META_BYTES: u64 = 16 << 20;
/// Longest model file beside the metadata (ONNX graph, reference flows) read, bytes.
pub const MAX_MODEL_FILE_BYTES: u64 = 256 << 20;
/// Longest learner checkpoint read, bytes.
pub const MAX_CHECKPOINT_BYTES: u64 = 256 << 20;
/// Longest threat-intel list read, bytes.
pub const MAX_INTEL_BYTES: u64 = 256 << 20;

/// Reads a whole file the operator points at (configuration, model, checkpoint, intel
/// list), refusing one larger than `max` bytes instead of growing without bound (a
/// device such as `/dev/urandom`, a runaway file).
pub fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes: not a file this sensor reads"),
        ));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_text(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
}

/// Explanation rows available at once (16 batches of 32: at least 16 flagged flows, about
/// 64 when they come four to a batch).
pub const REASONS_BURST_ROWS: f64 = 512.0;

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            variant: None,
            batch_size: 32,
            max_wait_ms: 5,
            reasons: true,
            reasons_budget: 0.05,
        }
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
    /// long ends, seconds. Default 120: SYN retransmissions and a late RST (seen 60-100 s
    /// apart in real sandbox captures) stay one flow, as tshark counts them.
    pub unanswered_timeout_secs: u64,
    /// A flow that lives this long without having written its event writes it, seconds.
    /// Default 3600.
    pub active_timeout_secs: u64,
    /// After FIN from both sides or an RST, the flow is kept this long to absorb
    /// trailing packets and retransmissions, seconds. Default 120 (2 MSL of RFC 9293
    /// with Linux's 60 s TIME_WAIT; retransmitted FINs back off past 60 s).
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
            unanswered_timeout_secs: 120,
            active_timeout_secs: 3600,
            closed_linger_secs: 120,
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
        let text = read_bounded_text(path, MAX_CONFIG_BYTES)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
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
            (0.0..=100.0).contains(&m.reasons_budget),
            "model.reasons_budget",
            "must be 0..=100 (rows per classified flow)",
        )?;
        check(
            m.variant.as_deref().is_none_or(|v| v == "float" || v == "int8"),
            "model.variant",
            "must be float or int8",
        )?;
        let l = &self.learning;
        check(l.learning_rate > 0.0 && l.learning_rate <= 1.0, "learning.learning_rate", "must be in (0, 1]")?;
        check((1..=256).contains(&l.steps_per_label), "learning.steps_per_label", "must be 1..=256")?;
        check((1..=1024).contains(&l.batch_per_class), "learning.batch_per_class", "must be 1..=1024")?;
        check((1..=64).contains(&l.repeat_new), "learning.repeat_new", "must be 1..=64")?;
        check(l.hidden_units <= 1024, "learning.hidden_units", "must be at most 1024")?;
        check((1..=1_000_000).contains(&l.reservoir_per_class), "learning.reservoir_per_class", "must be 1..=1000000")?;
        check(l.holdout_every >= 2, "learning.holdout_every", "must be at least 2")?;
        check((0.0..=1.0).contains(&l.shadow_tolerance), "learning.shadow_tolerance", "must be in [0, 1]")?;
        check(l.max_move_per_hour > 0.0, "learning.max_move_per_hour", "must be positive")?;
        check(l.rollback_check_every >= 1, "learning.rollback_check_every", "must be at least 1")?;
        check(l.cache_flows >= 1, "learning.cache_flows", "must be at least 1")?;
        check(l.drift_error_lambda > 0.0 && l.drift_score_lambda > 0.0, "learning.drift_*_lambda", "must be positive")?;
        check(
            l.on_drift != DriftAction::Reload || self.model.path.is_some(),
            "learning.on_drift",
            "`reload` needs model.path (the file a retrained model is dropped into)",
        )?;
        for s in l.sources.values() {
            check(s.weight > 0.0 && s.weight <= 1.0, "learning.sources.*.weight", "must be in (0, 1]")?;
            check(s.burst >= 1, "learning.sources.*.burst", "must be at least 1")?;
            check(
                s.token.as_ref().is_none_or(|t| t.len() >= 16),
                "learning.sources.*.token",
                "must be at least 16 characters",
            )?;
        }
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

    #[test]
    fn files_are_read_within_a_bound() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 100]).expect("write");
        assert_eq!(read_bounded(&p, 100).expect("fits").len(), 100);
        let e = read_bounded(&p, 99).expect_err("too large");
        assert!(e.to_string().contains("larger than 99 bytes"), "{e}");
        // A device that never ends is refused after the bound, not read forever.
        assert!(read_bounded(std::path::Path::new("/dev/urandom"), 4096).is_err());
        assert!(read_bounded_text(std::path::Path::new("/dev/zero"), 4096).is_err());
    }

    #[test]
    fn a_source_in_a_file_changes_only_the_fields_it_names() {
        // Only a token for `api`: its limits stay api's (1200/h, burst 200), not file's,
        // and `file` and `intel` are still there.
        let cfg: Config = toml::from_str("[learning.sources.api]\ntoken = \"0123456789abcdef\"\n").expect("parse");
        let api = &cfg.learning.sources["api"];
        assert_eq!((api.labels_per_hour, api.burst, api.weight), (1200, 200, 1.0));
        assert_eq!(api.token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(cfg.learning.sources["intel"].labels_per_hour, 600);
        assert!(cfg.learning.sources.contains_key("file"));
        // A new source starts from file's defaults.
        let cfg: Config = toml::from_str("[learning.sources.soc]\nweight = 0.5\n").expect("parse");
        let soc = &cfg.learning.sources["soc"];
        assert_eq!((soc.weight, soc.labels_per_hour, soc.burst), (0.5, 3600, 600));
        assert_eq!(cfg.learning.sources.len(), 4);
        assert!(toml::from_str::<Config>("[learning.sources.api]\ncolour = 1\n").is_err());
    }
}
