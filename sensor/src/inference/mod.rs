//! Stage 5: inference. Takes [`FeatureVector`](crate::features::FeatureVector)s and
//! yields a [`Verdict`] per flow: the CNN+LSTM trained in `model/`, exported to ONNX and
//! run by tract-onnx in fixed-shape micro-batches on each worker ([`Classifier`]). The
//! model (metadata + ONNX, [`ModelBundle`]) is checked against this sensor's feature
//! schema when it loads. Without a model every verdict is [`Class::Unknown`].
//!
//! Must not load or optimise a model on the packet path (a model is loaded once, or
//! swapped in by the control plane between batches), and must not see packets or flows:
//! only feature vectors.

use serde::Serialize;

pub mod classifier;
pub mod explain;
pub mod head;
pub mod model;
pub mod preprocess;

pub use classifier::Classifier;
pub use model::{InferenceError, ModelBundle, Novelty};
nightjar_common::label_enum! {
    /// The class of a flow.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Class {
        /// Benign traffic (model class 0).
        Benign => "benign",
        /// A network attack: web attack, exploit, scan (model class 1).
        Attack => "attack",
        /// Malware: C2, dropper (model class 2).
        Malware => "malware",
        /// No model, or the model was not confident enough.
        Unknown => "unknown",
    }
}

/// The decision for one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Predicted class.
    pub class: Class,
    /// Probability of the predicted class, when a model ran.
    pub score: Option<f32>,
    /// Version of the model that decided, when one ran.
    pub model: Option<String>,
    /// Version of the online-learned head that decided (0: as trained), when learning runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// What drove a verdict that is not `benign`: the input groups whose removal lowers
    /// the score the most, strongest first (at most [`MAX_REASONS`]). Empty for benign
    /// verdicts and without a model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

/// Most reasons one verdict carries.
pub const MAX_REASONS: usize = 3;

/// One input group that drove a verdict (occlusion: the group replaced by its neutral
/// value, the model run again).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reason {
    /// The group, a bounded name (`tls_certificate`, `uri_tokens`, ...).
    pub group: &'static str,
    /// What the analyst reads: the group and the flow's own values in it
    /// (`"certificate: self-signed"`, `"URI tokens: union, select"`), bounded.
    pub label: String,
    /// How much the verdict's class probability falls when the group is removed
    /// (positive: the group pushed towards the verdict).
    pub delta: f32,
}

impl Verdict {
    /// The verdict when no model is loaded.
    pub fn unknown() -> Self {
        Self { class: Class::Unknown, score: None, model: None, head: None, reasons: Vec::new() }
    }
}
