//! The model artifact: an ONNX file and its metadata (`model/artifacts/nightjar.json`:
//! version, feature schema, preprocessing, calibration, file hashes). Loading checks the
//! metadata against the sensor's own feature schema and the file against its hash, so a
//! wrong, corrupt or schema-mismatched model is refused with a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::preprocess::{Preprocess, PreprocessingJson, SEQ_COLUMNS};
use crate::features::{CHARS, FEATURE_NAMES, SCHEMA_VERSION, SEQ_LEN};

/// Oldest feature schema a model may be trained on: version 1 is version 2 without the
/// character input, so its models still load (they have three inputs).
pub const MIN_SCHEMA_VERSION: u32 = 1;

/// The model shipped in the binary (see `model/README.md` for its card).
const EMBEDDED_META: &str = include_str!("../../../model/artifacts/nightjar.json");
const EMBEDDED_FLOAT: &[u8] = include_bytes!("../../../model/artifacts/nightjar-float.onnx");
const EMBEDDED_INT8: &[u8] = include_bytes!("../../../model/artifacts/nightjar-int8.onnx");
const EMBEDDED_REFERENCE: &[u8] = include_bytes!("../../../model/artifacts/nightjar-reference.json");

/// Why a model was refused.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The metadata or model file could not be read.
    #[error("cannot read model file {path}")]
    Read {
        /// File.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata is not valid JSON of the expected shape.
    #[error("{what}: invalid model metadata: {reason}")]
    Metadata {
        /// Which metadata.
        what: String,
        /// Parser message.
        reason: String,
    },
    /// The model was trained on other features than this sensor computes.
    #[error("model {version} does not match this sensor's features: {reason}")]
    Schema {
        /// Model version.
        version: String,
        /// What differs.
        reason: String,
    },
    /// The ONNX file is not the one the metadata describes.
    #[error("{file}: sha256 {got} differs from the metadata's {want} (corrupt or replaced file)")]
    Hash {
        /// Model file.
        file: String,
        /// Hash found.
        got: String,
        /// Hash expected.
        want: String,
    },
    /// tract could not load or optimise the graph.
    #[error("model {version}: tract cannot load the ONNX graph: {reason}")]
    Load {
        /// Model version.
        version: String,
        /// tract's message.
        reason: String,
    },
    /// Running a batch failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// One model file named by the metadata.
#[derive(Clone, Debug, Deserialize)]
pub struct FileRef {
    /// File name beside the metadata.
    pub path: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// The metadata file.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelMeta {
    /// Version string, reported in verdicts and `nightjar_model_info`.
    pub model_version: String,
    /// When the model was exported, Unix seconds (0 when the metadata does not say).
    #[serde(default)]
    pub created_unix: u64,
    /// Feature schema version the model was trained on.
    pub schema_version: u32,
    /// Static feature names, in input order.
    pub static_features: Vec<String>,
    /// Sequence steps.
    pub sequence_length: usize,
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// Softmax temperature baked into the graph (reported only).
    pub temperature: f32,
    /// Below this top-class probability the verdict is `unknown`.
    pub unknown_below: f32,
    /// Fitted preprocessing.
    pub preprocessing: PreprocessingJson,
    /// Model files by variant (`float`, `int8`).
    pub files: BTreeMap<String, FileRef>,
    /// The variant used unless another is asked for.
    pub default: String,
    /// The softmax layer (online learning starts from it), when the export wrote it.
    #[serde(default)]
    pub head: Option<HeadJson>,
    /// Labelled reference embeddings for online learning, when the export wrote them.
    #[serde(default)]
    pub reference: Option<FileRef>,
    /// Width of the graph's fourth input, the HTTP request's characters (0: the graph has
    /// no character input, as every schema-1 model).
    #[serde(default)]
    pub chars: usize,
    /// Decision rule per app (`tls`, `http`; others use the top-level `unknown_below`):
    /// chosen on validation data in `model/`, applied to the probabilities of the graph or
    /// of the online-learned head.
    #[serde(default)]
    pub decision: BTreeMap<String, Decision>,
}

/// How one app's probabilities become a verdict: the benign and malware log-probabilities
/// are shifted by their log offsets (prior shifts: the benign one sets how many benign
/// flows are flagged, the malware one how the alerts split between attack and malware; an
/// attack offset would be redundant, since shifting every class alike changes nothing),
/// the probabilities renormalised, then the top class wins unless its probability is
/// below `unknown_below` (for every verdict, or, with `unknown_scope` `benign`, only when
/// the top class is benign: a weak alert stays an alert with its low score). Offsets left
/// out are 0; a rule without `unknown_scope` is `all` (metadata up to 2026.12.02-real-5).
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Decision {
    /// Added to the benign log-probability before renormalising.
    #[serde(default)]
    pub benign_log_offset: f32,
    /// Added to the malware log-probability before renormalising.
    #[serde(default)]
    pub malware_log_offset: f32,
    /// Below this top-class probability (after the shift) the verdict is `unknown`.
    pub unknown_below: f32,
    /// Which verdicts `unknown_below` may turn into `unknown`.
    #[serde(default)]
    pub unknown_scope: UnknownScope,
}

/// Which verdicts a decision rule's `unknown_below` applies to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownScope {
    /// Any top class.
    #[default]
    All,
    /// Only a benign top class (alerts are never hidden as `unknown`).
    Benign,
}

/// The trained softmax layer: `weight` is classes x embedding width.
#[derive(Clone, Debug, Deserialize)]
pub struct HeadJson {
    /// Weights.
    pub weight: Vec<Vec<f32>>,
    /// Biases.
    pub bias: Vec<f32>,
}

#[derive(Deserialize)]
struct ReferenceJson {
    dim: usize,
    labels: Vec<u8>,
    embeddings_f32le_b64: String,
}

/// The labelled reference embeddings (float32), `dim` per flow.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    /// Embedding width.
    pub dim: usize,
    /// Class per flow.
    pub labels: Vec<u8>,
    /// Row-major embeddings.
    pub embeddings: Vec<f32>,
}

/// A validated model: metadata, preprocessing and the ONNX bytes of one variant.
#[derive(Clone, Debug)]
pub struct ModelBundle {
    /// Metadata.
    pub meta: ModelMeta,
    /// Variant in use.
    pub variant: String,
    /// Preprocessing built from the metadata.
    pub preprocess: Preprocess,
    /// The ONNX graph.
    pub onnx: Vec<u8>,
    /// SHA-256 of the ONNX graph (checkpoints of the learned head name it).
    pub sha256: String,
    /// Reference embeddings for online learning (empty when the model has none).
    pub reference: Reference,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_reference(bytes: &[u8]) -> Result<Reference, String> {
    use base64::Engine;
    let r: ReferenceJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(r.embeddings_f32le_b64.as_bytes())
        .map_err(|e| e.to_string())?;
    if r.dim == 0 || raw.len() != r.labels.len() * r.dim * 4 || r.labels.iter().any(|&y| y > 2) {
        return Err(format!("{} bytes of embeddings for {} flows of width {}", raw.len(), r.labels.len(), r.dim));
    }
    let embeddings = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Reference { dim: r.dim, labels: r.labels, embeddings })
}

impl ModelBundle {
    /// The model embedded in the binary, in `variant` (`None`: its default).
    pub fn embedded(variant: Option<&str>) -> Result<Self, InferenceError> {
        Self::from_parts("embedded model", EMBEDDED_META, variant, |name| match name {
            "nightjar-float.onnx" => Ok(EMBEDDED_FLOAT.to_vec()),
            "nightjar-int8.onnx" => Ok(EMBEDDED_INT8.to_vec()),
            "nightjar-reference.json" => Ok(EMBEDDED_REFERENCE.to_vec()),
            other => Err(InferenceError::Read {
                path: other.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not embedded"),
            }),
        })
    }

    /// A model from its metadata file; the ONNX files sit beside it.
    pub fn from_path(meta_path: &Path, variant: Option<&str>) -> Result<Self, InferenceError> {
        use crate::config::{MAX_MODEL_FILE_BYTES, MAX_MODEL_META_BYTES, read_bounded, read_bounded_text};
        let text = read_bounded_text(meta_path, MAX_MODEL_META_BYTES)
            .map_err(|source| InferenceError::Read { path: meta_path.to_owned(), source })?;
        let dir = meta_path.parent().unwrap_or(Path::new(".")).to_owned();
        Self::from_parts(&meta_path.display().to_string(), &text, variant, |name| {
            let p = dir.join(name);
            read_bounded(&p, MAX_MODEL_FILE_BYTES).map_err(|source| InferenceError::Read { path: p, source })
        })
    }

    fn from_parts(
        what: &str,
        meta_text: &str,
        variant: Option<&str>,
        read: impl Fn(&str) -> Result<Vec<u8>, InferenceError>,
    ) -> Result<Self, InferenceError> {
        let meta: ModelMeta = serde_json::from_str(meta_text)
            .map_err(|e| InferenceError::Metadata { what: what.to_owned(), reason: e.to_string() })?;
        let schema = |reason: String| InferenceError::Schema { version: meta.model_version.clone(), reason };
        if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&meta.schema_version) {
            return Err(schema(format!(
                "schema_version {} (sensor: {MIN_SCHEMA_VERSION} to {SCHEMA_VERSION})",
                meta.schema_version
            )));
        }
        if meta.chars > CHARS || (meta.chars > 0 && meta.schema_version < 2) {
            return Err(schema(format!(
                "chars {} with schema_version {} (sensor: at most {CHARS}, from version 2)",
                meta.chars, meta.schema_version
            )));
        }
        let finite = |d: &Decision| {
            [d.benign_log_offset, d.malware_log_offset].iter().all(|o| o.is_finite())
                && (0.0..=1.0).contains(&d.unknown_below)
        };
        if let Some((app, _)) = meta.decision.iter().find(|(_, d)| !finite(d)) {
            return Err(InferenceError::Metadata {
                what: what.to_owned(),
                reason: format!("decision for {app:?}: offsets must be finite and unknown_below within 0..=1"),
            });
        }
        if meta.static_features != *FEATURE_NAMES {
            let first = meta.static_features.iter().zip(FEATURE_NAMES.iter()).position(|(a, b)| a != b);
            return Err(schema(format!(
                "static features differ ({} in the model, {} in the sensor; first difference at {first:?})",
                meta.static_features.len(),
                FEATURE_NAMES.len()
            )));
        }
        if meta.sequence_length != SEQ_LEN {
            return Err(schema(format!("sequence_length {} (sensor: {SEQ_LEN})", meta.sequence_length)));
        }
        if meta.classes != ["benign", "attack", "malware"] {
            return Err(schema(format!("classes {:?}", meta.classes)));
        }
        let preprocess = Preprocess::new(&meta.preprocessing, FEATURE_NAMES.len()).ok_or_else(|| {
            schema(format!(
                "preprocessing lengths differ from {} static and {SEQ_COLUMNS} sequence columns",
                FEATURE_NAMES.len()
            ))
        })?;
        let variant = variant.unwrap_or(&meta.default).to_owned();
        let file = meta.files.get(&variant).ok_or_else(|| InferenceError::Metadata {
            what: what.to_owned(),
            reason: format!("no model file for variant {variant:?} (has {:?})", meta.files.keys().collect::<Vec<_>>()),
        })?;
        let onnx = read(&file.path)?;
        let got = hex(&onnx);
        if got != file.sha256 {
            return Err(InferenceError::Hash { file: file.path.clone(), got, want: file.sha256.clone() });
        }
        let reference = match &meta.reference {
            None => Reference::default(),
            Some(r) => {
                let bytes = read(&r.path)?;
                let got = hex(&bytes);
                if got != r.sha256 {
                    return Err(InferenceError::Hash { file: r.path.clone(), got, want: r.sha256.clone() });
                }
                parse_reference(&bytes).map_err(|reason| InferenceError::Metadata { what: r.path.clone(), reason })?
            }
        };
        Ok(Self { meta, variant, preprocess, onnx, sha256: got, reference })
    }

    /// `version/variant`, as reported in events.
    pub fn label(&self) -> String {
        format!("{}/{}", self.meta.model_version, self.variant)
    }
}
