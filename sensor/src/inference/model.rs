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
    /// Novelty (`model/nightjar_model/ood.py`): class means and precision of the training
    /// flows' embeddings; a benign verdict on a flow farther than `max_distance` from every
    /// class mean is `unknown`. Absent in models before 2026.12.07.
    #[serde(default)]
    pub ood: Option<OodJson>,
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

/// The metadata's `ood` block (other keys it holds are reports).
#[derive(Clone, Debug, Deserialize)]
pub struct OodJson {
    /// One mean embedding per class the block was fitted on.
    pub class_means: Vec<Vec<f32>>,
    /// Inverse of the shared (shrunk) within-class covariance, embedding width squared.
    pub precision: Vec<Vec<f32>>,
    /// Squared Mahalanobis distance beyond which a flow is novel.
    pub max_distance: f32,
}

impl OodJson {
    /// The block's embedding width when its shapes agree and its numbers are finite.
    fn width(&self) -> Option<usize> {
        let dim = self.precision.len();
        let square = self.precision.iter().all(|r| r.len() == dim);
        let means = !self.class_means.is_empty() && self.class_means.iter().all(|m| m.len() == dim);
        let finite = self.class_means.iter().chain(&self.precision).flatten().all(|v| v.is_finite());
        (dim > 0 && square && means && finite && self.max_distance.is_finite() && self.max_distance > 0.0)
            .then_some(dim)
    }
}

/// A loaded `ood` block, flattened for the hot path.
#[derive(Clone, Debug)]
pub struct Novelty {
    dim: usize,
    means: Vec<f32>,
    precision: Vec<f32>,
    /// Squared Mahalanobis distance beyond which a flow is novel.
    pub max_distance: f32,
}

impl Novelty {
    /// `None` for a block whose shapes do not agree or whose numbers are not finite.
    pub fn new(j: &OodJson) -> Option<Self> {
        let dim = j.width()?;
        Some(Self {
            dim,
            means: j.class_means.iter().flatten().copied().collect(),
            precision: j.precision.iter().flatten().copied().collect(),
            max_distance: j.max_distance,
        })
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Smallest squared Mahalanobis distance of embedding `e` to a class mean (no
    /// allocation; `e` shorter than the width counts its missing values as 0).
    pub fn distance(&self, e: &[f32]) -> f32 {
        let mut best = f32::INFINITY;
        let mut x = [0.0f32; MAX_OOD_DIM];
        for mean in self.means.chunks_exact(self.dim) {
            for (k, xk) in x.iter_mut().take(self.dim).enumerate() {
                *xk = e.get(k).copied().unwrap_or(0.0) - mean[k];
            }
            let mut d = 0.0f32;
            for (row, xi) in self.precision.chunks_exact(self.dim).zip(&x) {
                let dot: f32 = row.iter().zip(&x).map(|(p, xj)| p * xj).sum();
                d += xi * dot;
            }
            best = best.min(d);
        }
        best
    }

    /// True when `e` lies beyond `max_distance` (a NaN distance counts as novel).
    pub fn is_novel(&self, e: &[f32]) -> bool {
        let d = self.distance(e);
        d.is_nan() || d > self.max_distance
    }
}

/// Widest embedding a novelty block may describe.
pub const MAX_OOD_DIM: usize = 512;

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
        if meta.ood.as_ref().is_some_and(|o| o.width().is_none_or(|w| w > MAX_OOD_DIM)) {
            return Err(InferenceError::Metadata {
                what: what.to_owned(),
                reason: format!(
                    "ood: class_means and precision must share one width (at most {MAX_OOD_DIM}), \
                     with finite numbers and a positive max_distance"
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn block(means: Vec<Vec<f32>>, precision: Vec<Vec<f32>>, max_distance: f32) -> OodJson {
        OodJson { class_means: means, precision, max_distance }
    }

    #[test]
    fn novelty_is_the_smallest_mahalanobis_distance() {
        // Precision diag(1, 4): distance along the second axis counts four times.
        let j = block(vec![vec![0.0, 0.0], vec![10.0, 0.0]], vec![vec![1.0, 0.0], vec![0.0, 4.0]], 5.0);
        let n = Novelty::new(&j).expect("valid block");
        assert!((n.distance(&[0.0, 1.0]) - 4.0).abs() < 1e-6);
        assert!((n.distance(&[9.0, 0.0]) - 1.0).abs() < 1e-6, "nearest mean wins");
        assert!(!n.is_novel(&[1.0, 1.0]), "1 + 4 = 5 is not beyond 5");
        assert!(n.is_novel(&[5.0, 0.5]), "25 + 1 and 25 + 1 from both means");
        assert!(n.is_novel(&[f32::NAN, 0.0]), "a NaN embedding is novel, not benign");
        // An off-diagonal precision: x^T P x with P = [[2, 1], [1, 2]] at (1, -1) is 2.
        let j = block(vec![vec![0.0, 0.0]], vec![vec![2.0, 1.0], vec![1.0, 2.0]], 1.0);
        assert!((Novelty::new(&j).unwrap().distance(&[1.0, -1.0]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let ok = || block(vec![vec![0.0, 0.0]], vec![vec![1.0, 0.0], vec![0.0, 1.0]], 1.0);
        assert_eq!(ok().width(), Some(2));
        let mut b = ok();
        b.precision[1].pop();
        assert!(b.width().is_none(), "not square");
        let mut b = ok();
        b.class_means[0].push(1.0);
        assert!(b.width().is_none(), "mean of another width");
        let mut b = ok();
        b.class_means.clear();
        assert!(b.width().is_none(), "no class");
        let mut b = ok();
        b.precision[0][0] = f32::INFINITY;
        assert!(b.width().is_none(), "not finite");
        let mut b = ok();
        b.max_distance = -1.0;
        assert!(b.width().is_none(), "threshold not positive");
        assert!(Novelty::new(&b).is_none());
    }
}
