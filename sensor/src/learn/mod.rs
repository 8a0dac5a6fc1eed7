//! Stage 6: online learning. The workers score flows with the current [`Head`] (the layer
//! after the LSTM's hidden state), which they read through an [`ArcSwap`] between batches:
//! no lock on the hot path, and a new head is picked up by the next batch. Labelled
//! feedback (the HTTP API, a labels file, threat-intel lists) reaches the [`Learner`] on
//! its own thread ([`service`]), which applies guarded updates, detects drift and
//! checkpoints its state. `nightjar replay --feedback` runs the learner inline instead
//! ([`Prequential`]): each label is applied right after its flow was scored.
//!
//! Takes scored flows (embedding, verdict, fingerprints) and labels; yields a new head.
//! Must not block a worker: workers hand scored flows over a bounded queue (a full queue
//! drops and counts) and read the head without a lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

pub mod checkpoint;
pub mod drift;
pub use crate::inference::head;
pub mod intel;
pub mod learner;
pub mod service;

pub use head::Head;
pub use learner::{Example, Feedback, Learner, Outcome};

use crate::config::LearningConfig;
use crate::inference::ModelBundle;

/// Why online learning could not start.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The model has no head weights or no reference embeddings.
    #[error("model {0} cannot learn online: {1} (re-export it with `python -m nightjar_model reference`)")]
    Model(String, &'static str),
    /// The head in the metadata is malformed.
    #[error(transparent)]
    Head(#[from] head::HeadError),
    /// An intel list could not be read.
    #[error(transparent)]
    Intel(#[from] intel::IntelError),
    /// The head in the metadata does not reproduce the graph's probabilities.
    #[error("model {0}: the head in its metadata differs from the graph's softmax layer by {1}")]
    HeadMismatch(String, f32),
    /// Online learning was asked for without a model.
    #[error("online learning needs a model (and learning.enabled)")]
    NoModel,
    /// A labels file could not be read.
    #[error("feedback file {path}: {reason}")]
    Labels {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The trained head of a model.
pub fn trained_head(bundle: &ModelBundle, cfg: &LearningConfig) -> Result<Head, LearnError> {
    let label = bundle.label();
    let h =
        bundle.meta.head.as_ref().ok_or_else(|| LearnError::Model(label.clone(), "no head weights in its metadata"))?;
    Ok(Head::from_trained(&h.weight, &h.bias, bundle.meta.temperature, cfg.hidden_units, cfg.seed)?)
}

/// Largest difference between the graph's probabilities and the trained head's that
/// proves they are the same layer (int8 graphs quantise it; float ones agree to ~1e-6).
const HEAD_PARITY_TOLERANCE: f32 = 2e-2;

/// Checks that `trained` (from the metadata) is `classifier`'s softmax layer.
pub fn check_head(classifier: &mut crate::inference::Classifier, trained: &Head) -> Result<(), LearnError> {
    let label = classifier.label().to_owned();
    let diff = classifier.head_parity(trained).map_err(|_| LearnError::HeadMismatch(label.clone(), f32::NAN))?;
    if diff.is_nan() || diff > HEAD_PARITY_TOLERANCE {
        return Err(LearnError::HeadMismatch(label, diff));
    }
    Ok(())
}

/// The model's reference embeddings as examples.
pub fn reference_examples(bundle: &ModelBundle) -> Vec<Example> {
    let r = &bundle.reference;
    r.labels.iter().zip(r.embeddings.chunks_exact(r.dim.max(1))).map(|(&y, e)| Example::new(e.to_vec(), y)).collect()
}

/// A fresh learner for `bundle`, or the one in `cfg.state_dir` when a good checkpoint of
/// this model is there. Refused checkpoints are reported on stderr (the last good one, or
/// the trained head, is used instead).
pub fn start_learner(bundle: &ModelBundle, cfg: &LearningConfig) -> Result<Learner, LearnError> {
    let trained = trained_head(bundle, cfg)?;
    let reference = reference_examples(bundle);
    if reference.is_empty() {
        return Err(LearnError::Model(bundle.label(), "no reference embeddings"));
    }
    if reference[0].e.len() != trained.dim {
        return Err(LearnError::Model(bundle.label(), "reference embeddings and head differ in width"));
    }
    if let Some(dir) = &cfg.state_dir {
        let (state, refused) = checkpoint::load(dir);
        for e in &refused {
            eprintln!("warning: {e}; using the previous checkpoint or the trained head");
            metrics::counter!(crate::metric_names::LEARN_CHECKPOINT_ERRORS, "op" => "load").increment(1);
        }
        if let Some(state) = state {
            if state.model_sha256 == bundle.sha256
                && state.head.dim == trained.dim
                && state.head.hidden == trained.hidden
            {
                eprintln!(
                    "learning: resumed head version {} ({} reservoir, {} held-back examples) from {}",
                    state.head.version,
                    state.reservoir.iter().map(Vec::len).sum::<usize>(),
                    state.holdout.values().map(std::collections::VecDeque::len).sum::<usize>(),
                    dir.display()
                );
                return Ok(Learner::resume(cfg, state, &reference, &trained));
            }
            eprintln!(
                "learning: the checkpoint in {} belongs to another model or head shape; starting from the trained head",
                dir.display()
            );
        }
    }
    Ok(Learner::new(cfg, &bundle.sha256, trained, &reference))
}

/// Publishes every learning metric at its starting value, so dashboards and alerts see
/// them before the first label.
pub fn register_metrics(learner: &Learner) {
    use crate::metric_names as m;
    for signal in ["error", "score"] {
        metrics::counter!(m::LEARN_DRIFTS, "signal" => signal).increment(0);
    }
    let (de, ds) = learner.drift_scores();
    metrics::gauge!(m::LEARN_DRIFT_SCORE, "signal" => "error").set(de);
    metrics::gauge!(m::LEARN_DRIFT_SCORE, "signal" => "score").set(ds);
    metrics::counter!(m::LEARN_ROLLBACKS).increment(0);
    metrics::counter!(m::LEARN_UPDATES_APPLIED).increment(0);
    for reason in ["move_cap", "shadow"] {
        metrics::counter!(m::LEARN_UPDATES_REJECTED, "reason" => reason).increment(0);
    }
    for source in learner.config().sources.keys() {
        metrics::counter!(m::LEARN_FEEDBACK, "source" => source.clone(), "outcome" => "applied").increment(0);
    }
    metrics::gauge!(m::LEARN_HEAD_VERSION).set(learner.state.head.version as f64);
    metrics::counter!(m::LEARN_CHECKPOINTS).increment(0);
    metrics::counter!(m::MODEL_RELOADS, "result" => "ok").increment(0);
}

/// Writes the learner's checkpoint when it has a state directory; errors are reported
/// and counted (learning goes on).
pub fn save_checkpoint(learner: &mut Learner) {
    learner.flush_log();
    let Some(dir) = learner.config().state_dir.clone() else { return };
    match checkpoint::save(&dir, &learner.state) {
        Ok(()) => {
            learner.unsaved = 0;
            metrics::counter!(crate::metric_names::LEARN_CHECKPOINTS).increment(1);
        }
        Err(e) => {
            eprintln!("warning: {e}");
            metrics::counter!(crate::metric_names::LEARN_CHECKPOINT_ERRORS, "op" => "save").increment(1);
        }
    }
}

/// The head the workers score with, tagged with the generation of the model it belongs
/// to (a worker whose model is of another generation uses the graph's own softmax).
#[derive(Debug)]
pub struct Scorer {
    /// Model generation (bumped by every hot swap).
    pub generation: u64,
    /// The head.
    pub head: Head,
}

/// What the workers share with the learner.
pub struct Shared {
    /// The head the workers score with.
    pub head: ArcSwap<Scorer>,
    /// Scored flows and feedback to the learner thread (absent in prequential replay).
    pub tx: Option<crossbeam_channel::Sender<service::Msg>>,
    /// Scored flows the learner could not take (its queue was full).
    pub dropped: AtomicU64,
    /// Set to ask for a model reload (SIGHUP, the API, or drift with `on_drift =
    /// reload`); the runtime's control loop acts on it.
    pub reload: Arc<AtomicBool>,
}

impl Shared {
    /// Shared state around an initial head (model generation 0); `reload` is the
    /// runtime's reload flag.
    pub fn new(head: Head, tx: Option<crossbeam_channel::Sender<service::Msg>>, reload: Arc<AtomicBool>) -> Self {
        Self { head: ArcSwap::from_pointee(Scorer { generation: 0, head }), tx, dropped: AtomicU64::new(0), reload }
    }

    /// Publishes a new head for model `generation`.
    pub fn publish(&self, generation: u64, head: Head) {
        self.head.store(Arc::new(Scorer { generation, head }));
    }

    /// Hands a scored flow to the learner without blocking; counts it when the queue is full.
    pub fn offer(&self, s: service::Scored) {
        if let Some(tx) = &self.tx
            && tx.try_send(service::Msg::Scored(s)).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(crate::metric_names::LEARN_SCORED_DROPPED).increment(1);
        }
    }
}

/// A flow's oriented 5-tuple (client first), as in the labels file.
pub type Tuple = (IpAddr, u16, IpAddr, u16);

/// Labels by 5-tuple: (class, source) in file order; a 5-tuple reused by several flows gets
/// its labels in turn.
#[derive(Debug, Default)]
pub struct Labels {
    by_tuple: HashMap<Tuple, std::collections::VecDeque<(usize, String)>>,
    /// Labels read.
    pub len: usize,
}

impl Labels {
    /// Reads a CSV with the columns `client_ip,client_port,server_ip,server_port,class`
    /// (any order, more columns allowed; an optional `source` column names the source,
    /// default `file`). `class` is 0/1/2 or benign/attack/malware.
    pub fn read(path: &Path) -> Result<Self, LearnError> {
        let err = |reason: String| LearnError::Labels { path: path.display().to_string(), reason };
        let mut rd = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
        let headers = rd.headers().map_err(|e| err(e.to_string()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let need = |name: &str| col(name).ok_or_else(|| err(format!("no `{name}` column (header: {headers:?})")));
        let (ci, cp, si, sp, cl) =
            (need("client_ip")?, need("client_port")?, need("server_ip")?, need("server_port")?, need("class")?);
        let src = col("source");
        let mut me = Self::default();
        for (n, rec) in rd.records().enumerate() {
            let rec = rec.map_err(|e| err(e.to_string()))?;
            let line = n + 2;
            let field = |i: usize| rec.get(i).unwrap_or("").trim();
            let ip = |i: usize| {
                field(i).parse::<IpAddr>().map_err(|_| err(format!("line {line}: bad address {:?}", field(i))))
            };
            let port =
                |i: usize| field(i).parse::<u16>().map_err(|_| err(format!("line {line}: bad port {:?}", field(i))));
            let class = match field(cl) {
                "0" | "benign" => 0,
                "1" | "attack" => 1,
                "2" | "malware" => 2,
                other => {
                    return Err(err(format!("line {line}: class {other:?} is not 0/1/2 or benign/attack/malware")));
                }
            };
            let source = src.map(field).filter(|s| !s.is_empty()).unwrap_or("file").to_owned();
            me.by_tuple.entry((ip(ci)?, port(cp)?, ip(si)?, port(sp)?)).or_default().push_back((class, source));
            me.len += 1;
        }
        Ok(me)
    }

    /// The next label of a flow, if any.
    pub fn take(&mut self, t: &Tuple) -> Option<(usize, String)> {
        let q = self.by_tuple.get_mut(t)?;
        let v = q.pop_front();
        if q.is_empty() {
            self.by_tuple.remove(t);
        }
        v
    }
}

/// Prequential (test-then-train) learning inside a replay worker.
pub struct Prequential {
    /// The learner.
    pub learner: Learner,
    /// Labels not yet applied.
    pub labels: Labels,
    /// Threat-intel lists.
    pub intel: intel::Intel,
    /// Outcome counts, by [`Outcome::as_str`].
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
}

impl Prequential {
    /// Applies the label of one just-scored flow (and an intel label when its fingerprints
    /// are listed). Returns true when the head changed.
    pub fn after_scored(&mut self, s: &service::Scored) -> bool {
        let before = self.learner.state.head.version;
        self.learner.observe_score(s.top);
        let give = |learner: &mut Learner,
                    outcomes: &mut std::collections::BTreeMap<&'static str, u64>,
                    label: usize,
                    source: String| {
            let fb = Feedback {
                embedding: s.embedding.clone(),
                label,
                source,
                scored: Some(s.class),
                now: s.ts,
                flow: Some((s.tuple, s.start)),
            };
            *outcomes.entry(learner.apply(&fb).as_str()).or_default() += 1;
        };
        if !self.intel.is_empty() && self.intel.matches(s.ja3.as_deref(), s.ja4.as_deref(), s.cert_sha1.as_deref()) {
            give(&mut self.learner, &mut self.outcomes, 2, "intel".into());
        }
        if let Some((label, source)) = self.labels.take(&s.tuple) {
            give(&mut self.learner, &mut self.outcomes, label, source);
        }
        if self.learner.unsaved >= self.learner.config().checkpoint_every_updates {
            save_checkpoint(&mut self.learner);
        }
        self.learner.state.head.version != before
    }
}
