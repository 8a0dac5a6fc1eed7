//! The learner thread of a running sensor. Workers offer every scored flow (embedding,
//! class, fingerprints) without blocking; the thread keeps the recent ones in a bounded
//! cache so that feedback by flow id or 5-tuple can be applied, turns intel matches into
//! weak labels, applies feedback, publishes each new head to the workers, and checkpoints.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lru::LruCache;
use serde::Serialize;

use super::intel::Intel;
use super::{Feedback, Learner, Outcome, Shared, Tuple, save_checkpoint};
use crate::config::DriftAction;
use crate::metric_names as m;

/// A flow the workers scored.
#[derive(Clone, Debug)]
pub struct Scored {
    /// Flow id (as in the event).
    pub flow_id: u64,
    /// Oriented 5-tuple.
    pub tuple: Tuple,
    /// Time the flow was scored: its last packet, seconds since the epoch.
    pub ts: f64,
    /// Its first packet, seconds since the epoch.
    pub start: f64,
    /// Embedding.
    pub embedding: Vec<f32>,
    /// Class given (argmax).
    pub class: usize,
    /// Top probability.
    pub top: f32,
    /// JA3 of the client hello.
    pub ja3: Option<String>,
    /// JA4 of the client hello.
    pub ja4: Option<String>,
    /// SHA-1 of the server's leaf certificate.
    pub cert_sha1: Option<String>,
    /// Generation of the model that scored it.
    pub generation: u64,
}

/// A label for a flow the sensor saw.
#[derive(Clone, Debug)]
pub struct FeedbackRequest {
    /// By flow id...
    pub flow_id: Option<u64>,
    /// ... or by 5-tuple (the most recent flow of it).
    pub tuple: Option<Tuple>,
    /// Class 0/1/2.
    pub label: usize,
    /// Source name (from the API token or the file).
    pub source: String,
}

/// The learner's state, for `GET /learning` and tests.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Head version (0: as trained).
    pub head_version: u64,
    /// Reservoir examples.
    pub reservoir: usize,
    /// Held-back examples.
    pub holdout: usize,
    /// Flows in the feedback cache.
    pub cached_flows: usize,
    /// Drift score of the feedback error stream (1.0 and above: drift).
    pub drift_error: f64,
    /// Drift score of the score-uncertainty stream.
    pub drift_score: f64,
    /// Rollbacks so far.
    pub rollbacks: u64,
    /// Labels seen.
    pub labels_seen: u64,
    /// Scored flows the learner could not take.
    pub scored_dropped: u64,
}

/// Messages to the learner thread.
pub enum Msg {
    /// A scored flow.
    Scored(Scored),
    /// A label; the outcome (or `None` for an unknown flow) goes back on the sender.
    Feedback(FeedbackRequest, Sender<Option<Outcome>>),
    /// Report the status.
    Status(Sender<Status>),
    /// Write a checkpoint now.
    Checkpoint,
    /// Checkpoint, answer, and end the thread.
    Stop(Sender<()>),
    /// A new model was swapped in: learn for it from now on.
    NewModel {
        /// Its generation.
        generation: u64,
        /// A learner for it.
        learner: Box<Learner>,
    },
}

struct Cached {
    embedding: Vec<f32>,
    class: usize,
    flow: (Tuple, f64),
}

/// Runs the learner until every sender is gone; then checkpoints and returns it.
pub fn run(mut learner: Learner, intel: &Intel, shared: &Arc<Shared>, rx: &Receiver<Msg>) -> Learner {
    let cap = NonZeroUsize::new(learner.config().cache_flows).unwrap_or(NonZeroUsize::MIN);
    let mut cache: LruCache<u64, Cached> = LruCache::new(cap);
    let mut by_tuple: LruCache<Tuple, u64> = LruCache::new(cap);
    let interval = Duration::from_secs(learner.config().checkpoint_interval_secs);
    let mut last_save = Instant::now();
    let mut generation = 0;
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let before = (learner.state.head.version, learner.state.drift_error.detections);
        match msg {
            Some(Msg::Scored(s)) if s.generation != generation => {}
            Some(Msg::Scored(s)) => {
                on_scored(&mut learner, intel, shared, s, &mut cache, &mut by_tuple);
            }
            Some(Msg::Feedback(req, reply)) => {
                let id = req.flow_id.or_else(|| req.tuple.and_then(|t| by_tuple.get(&t).copied()));
                let out = id.and_then(|id| cache.get(&id)).map(|c| {
                    learner.apply(&Feedback {
                        embedding: c.embedding.clone(),
                        label: req.label,
                        source: req.source.clone(),
                        scored: Some(c.class),
                        now: wall_secs(),
                        flow: Some(c.flow),
                    })
                });
                if out.is_none() {
                    metrics::counter!(m::LEARN_FEEDBACK, "source" => "other", "outcome" => "unknown_flow").increment(1);
                }
                let _ = reply.send(out);
            }
            Some(Msg::Status(reply)) => {
                let (de, ds) = learner.drift_scores();
                let _ = reply.send(Status {
                    head_version: learner.state.head.version,
                    reservoir: learner.reservoir_len(),
                    holdout: learner.holdout_len(),
                    cached_flows: cache.len(),
                    drift_error: de,
                    drift_score: ds,
                    rollbacks: learner.state.rollbacks,
                    labels_seen: learner.state.labels_seen,
                    scored_dropped: shared.dropped.load(Ordering::Relaxed),
                });
            }
            Some(Msg::Checkpoint) => {
                save_checkpoint(&mut learner);
                last_save = Instant::now();
            }
            Some(Msg::Stop(reply)) => {
                save_checkpoint(&mut learner);
                let _ = reply.send(());
                return learner;
            }
            Some(Msg::NewModel { generation: g, learner: new }) => {
                save_checkpoint(&mut learner);
                learner = *new;
                generation = g;
                cache.clear();
                by_tuple.clear();
                shared.publish(g, learner.state.head.clone());
                continue;
            }
            None => {}
        }
        if learner.state.drift_error.detections != before.1 {
            drift(&learner, shared, "error");
        }
        if learner.state.head.version != before.0 {
            shared.publish(generation, learner.state.head.clone());
        }
        let due = learner.unsaved >= learner.config().checkpoint_every_updates
            || (learner.unsaved > 0 && last_save.elapsed() >= interval);
        if due {
            save_checkpoint(&mut learner);
            last_save = Instant::now();
        }
    }
    if learner.unsaved > 0 {
        save_checkpoint(&mut learner);
    }
    learner
}

/// Keeps a scored flow for feedback, feeds the score drift detector, and applies an intel
/// label when its fingerprints are listed.
fn on_scored(
    learner: &mut Learner,
    intel: &Intel,
    shared: &Shared,
    s: Scored,
    cache: &mut LruCache<u64, Cached>,
    by_tuple: &mut LruCache<Tuple, u64>,
) {
    if learner.observe_score(s.top) {
        drift(learner, shared, "score");
    }
    if !intel.is_empty() && intel.matches(s.ja3.as_deref(), s.ja4.as_deref(), s.cert_sha1.as_deref()) {
        learner.apply(&Feedback {
            embedding: s.embedding.clone(),
            label: 2,
            source: "intel".into(),
            scored: Some(s.class),
            now: s.ts,
            flow: Some((s.tuple, s.start)),
        });
    }
    by_tuple.put(s.tuple, s.flow_id);
    cache.put(s.flow_id, Cached { embedding: s.embedding, class: s.class, flow: (s.tuple, s.start) });
    metrics::gauge!(m::LEARN_CACHED_FLOWS).set(cache.len() as f64);
}

fn drift(learner: &Learner, shared: &Shared, signal: &str) {
    eprintln!(
        "learning: drift detected on the {signal} signal (head version {}); {}",
        learner.state.head.version,
        match learner.config().on_drift {
            DriftAction::Log => "consider retraining (model/README.md) with the accumulated feedback.csv",
            DriftAction::Reload => "reloading the model file",
        }
    );
    if learner.config().on_drift == DriftAction::Reload {
        shared.reload.store(true, Ordering::Relaxed);
    }
}

fn wall_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
