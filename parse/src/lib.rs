//! Nightjar's parsers, as a crate of their own: everything that reads bytes an attacker
//! controls, and nothing else. The sensor (`nightjar`) re-exports each module at its
//! old place (`nightjar::decode`, `nightjar::fingerprint`, `nightjar::flow::reassembly`,
//! `nightjar::flow::sniff`, `nightjar::features::url`, `nightjar::capture::LinkType`),
//! and the fuzz targets of the decoders build this crate alone.
//!
//! ```text
//!  frame bytes ──► decode (link, VLAN/MPLS/tunnels, IP, TCP) ──► Packet<'_>
//!  TCP payload ──► reassembly (first-copy policy) ──► sniff (TLS? HTTP? PROXY?) ──►
//!                  decode::tls (records, hellos, certificates) / decode::http (requests)
//!  ClientHello / ServerHello ──► fingerprint (JA3, JA3S, JA4)
//!  request target ──► url (tokens for the model)
//! ```
//!
//! Every parser is bounded (RFC-cited limits), never panics on input, and reports
//! malformed input as a small `Copy` reason that the caller counts: no error strings
//! and no allocation per packet. This crate has no classifier, no metrics, no I/O and no
//! threads; counting and what to do with a bad packet belong to the sensor.

pub mod link;

pub mod decode;
pub mod fingerprint;
pub mod reassembly;
pub mod sniff;
pub mod url;
