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
    /// A live socket failed while reading.
    #[error("{what}: {source}")]
    Live {
        /// Which operation.
        what: &'static str,
        /// OS error.
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

/// Errors of live capture (XDP program, AF_XDP sockets, AF_PACKET).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The XDP program could not be loaded, attached or configured.
    #[error("XDP: {what}: {source}")]
    Xdp {
        /// What was being done.
        what: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A socket call failed.
    #[error("{what}: {source}")]
    Socket {
        /// Which call.
        what: &'static str,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// This binary was built without the XDP program (cargo feature `ebpf`).
    #[error("this build has no XDP program (build with --features ebpf)")]
    NoProgram,
    /// A requested feature is not available in this build.
    #[error("{0}")]
    Unsupported(&'static str),
    /// No such interface.
    #[error("no interface named {0}")]
    NoInterface(String),
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
