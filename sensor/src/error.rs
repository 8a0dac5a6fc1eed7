//! Typed errors of the library, one enum per stage that can fail as a whole. Per-packet
//! problems are not errors: they are small `Copy` codes counted in the stats
//! (see [`crate::decode::DecodeError`]).

use std::path::PathBuf;

/// Errors of a packet source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// File path.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The capture file is corrupt or truncated.
    #[error("{path}: {reason} at offset {offset}")]
    Format {
        /// File path.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Errors loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for the config schema.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Parser error.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid config value {field}: {reason}")]
    Invalid {
        /// Dotted field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Errors of the replay pipeline as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A capture source failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Writing events or features failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// Which output.
        what: &'static str,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked (a bug; reported, not hidden).
    #[error("worker thread {0} panicked")]
    WorkerPanic(usize),
}
