//! Nightjar: a network security sensor that classifies TCP flows opening with a TLS
//! handshake or a plaintext HTTP request as benign, attack or malware, without
//! decrypting anything.
//!
//! The data path, one module per stage, declared here in data-path order:
//!
//! ```text
//!  capture ──► decode ──► flow ──► features ──► inference ──► export
//!  (pcap,      (eth/vlan/  (table,   (TLS/cert/   (verdict)     (JSON events,
//!   AF_XDP)     ip/tcp,     reassembly, HTTP, seqs,              feature lines)
//!               TLS, HTTP)  TLS/HTTP)   JA3/JA4)
//! ```
//!
//! [`learn`] adapts the classifier head to labelled feedback while the sensor runs.
//! [`runtime`] says how the stages run (one worker loop for replay and live capture),
//! [`control`] steers a running sensor (model slot and reload, learner thread, the HTTP
//! endpoint with the feedback API and the live page), [`stats`] counts everything
//! that is dropped or skipped, [`config`] is the one configuration tree.

pub mod config;
pub mod error;

pub mod capture;
/// Stage 2, in the parser crate [`nightjar_parse`] (re-exported here).
pub use nightjar_parse::decode;
pub mod export;
pub mod features;
/// JA3/JA3S/JA4, in the parser crate [`nightjar_parse`] (re-exported here).
pub use nightjar_parse::fingerprint;
pub mod flow;
pub mod inference;
pub mod learn;
pub mod metric_names;

pub mod runtime;

pub mod control;
pub mod stats;
