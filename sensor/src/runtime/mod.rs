//! How the stages run: a [`Worker`] owns one flow-table shard and runs decode → flow →
//! features → (inference) → serialisation for the packets it is given. Every way of
//! running uses the one worker loop of [`driver`]: inline replay (one worker on the
//! calling thread, reading the files), sharded replay (the reader decodes each frame
//! once and shards the packets over workers by a symmetric flow hash, exactly as RSS
//! spreads live traffic over RX queues) and live capture ([`live`], a worker per
//! socket). Lines leave through [`output`]: straight into the sinks inline, otherwise
//! through one writer thread with a backpressure policy (block for replay, drop and
//! count for live) and recycled buffers.
//!
//! Workers share nothing: each has its table, scratch buffers and counters. Queues
//! between threads are bounded, and batches and buffers are recycled so the steady state
//! does not allocate per frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

pub mod driver;
pub mod error;
pub mod live;
pub mod output;
pub mod summary;

pub use self::error::PipelineError;

use self::driver::{FileReader, FilesFeed, Loop, PacketBatch, ShardFeed, file_len, run_worker};
use self::output::{Backpressure, Direct, HAND_OUT_BYTES, Writer};
use crate::capture::{Frame, PacketSource, PcapFileSource};
use crate::config::Config;
use crate::decode::{Decoded, Packet, decode_frame};
use crate::error::CaptureError;
use crate::export::FlowEvent;
use crate::export::eve::EveTypes;
use crate::export::event::community_id;
use crate::export::lines::{LineSink, Lines};
use crate::features::{FeatureVector, extract};
use crate::fingerprint::Fingerprints;
use crate::flow::{App, FlowKey, FlowRecord, FlowTable};
use crate::inference::{Classifier, InferenceError, ModelBundle, Verdict};
use crate::learn::service::Scored;
use crate::learn::{Head, LearnError, Prequential, Shared};
use crate::stats::Stats;

/// Frames moved between threads per batch.
const BATCH_FRAMES: usize = 512;
/// Output bytes the inline worker gathers before writing them.
const OUTPUT_FLUSH_BYTES: usize = 256 * 1024;
/// Batches in flight per worker queue.
const QUEUE_DEPTH: usize = 8;
/// Flows ended, serialised and written per step of a shutdown flush.
pub const FLUSH_CHUNK_FLOWS: usize = 4096;

/// What to produce for each flow record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outputs {
    /// Serialise JSON events.
    pub events: bool,
    /// Serialise feature lines.
    pub features: bool,
    /// Serialise Suricata EVE records of these types.
    pub eve: Option<EveTypes>,
}

nightjar_common::label_enum! {
    /// The serialised outputs of a worker, each with its buffer and sink.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Stream {
        /// Flow events (JSON lines).
        Events => "events",
        /// Feature lines.
        Features => "features",
        /// Suricata EVE records.
        Eve => "eve",
    }
}

/// A finished flow waiting for its verdict (flows keep their order: those that need no
/// model wait behind those that do).
struct Pending {
    event: FlowEvent,
    /// The flow goes through the model.
    classify: bool,
}

/// One shard of the pipeline: decode, flow table, features, inference, serialisation.
pub struct Worker {
    table: FlowTable,
    /// Counters of this worker.
    pub stats: Stats,
    records: Vec<FlowRecord>,
    outputs: Outputs,
    /// Serialised events not yet handed out.
    pub events_buf: Lines,
    /// Serialised feature lines not yet handed out.
    pub features_buf: Lines,
    /// Serialised EVE records not yet handed out.
    pub eve_buf: Lines,
    classifier: Option<Classifier>,
    max_wait: Duration,
    /// Explain verdicts that are not benign (`model.reasons`).
    reasons: bool,
    /// `model.reasons_budget`.
    cfg_reasons_budget: f64,
    /// Explanation rows available (token bucket).
    reason_rows: f64,
    pending: Vec<Pending>,
    queued: usize,
    oldest: Option<Instant>,
    verdicts: Vec<Verdict>,
    learn: Option<WorkerLearn>,
    /// Generation of the model the classifier runs (bumped by hot swaps).
    generation: u64,
    slot: Option<Arc<ModelSlot>>,
    history: Option<Arc<crate::export::live::History>>,
    history_delta: crate::export::live::Delta,
}

/// What a running control plane ([`crate::control::Control`]) gives the workers: the
/// model slot and the learner, attached to each worker at its start, and a poll between
/// batches (where a requested model reload happens, off the packet path).
pub trait Attach: Sync {
    /// Gives a worker the model slot and the learner.
    fn attach(&self, w: Worker) -> Worker;

    /// Carries out what the operator asked for since the last poll (a model reload).
    fn poll(&self);
}

/// The model the workers should run: a hot swap stores a new one (optimised once, off
/// the packet path); each worker forks it between two batches.
pub struct ModelSlot {
    current: arc_swap::ArcSwap<LoadedModel>,
}

/// A loaded model and its generation.
pub struct LoadedModel {
    /// 0 for the model loaded at start, +1 per swap.
    pub generation: u64,
    /// The optimised model, forked by each worker.
    pub prototype: std::sync::Mutex<Classifier>,
}

impl ModelSlot {
    /// A slot holding the start-up model.
    pub fn new(prototype: Classifier) -> Self {
        Self {
            current: arc_swap::ArcSwap::from_pointee(LoadedModel {
                generation: 0,
                prototype: std::sync::Mutex::new(prototype),
            }),
        }
    }

    /// Generation now in the slot.
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Stores a new model; returns its generation.
    pub fn swap(&self, prototype: Classifier) -> u64 {
        let generation = self.generation() + 1;
        self.current.store(Arc::new(LoadedModel { generation, prototype: std::sync::Mutex::new(prototype) }));
        generation
    }
}

/// A worker's link to online learning.
pub struct WorkerLearn {
    /// The head and the learner's queue.
    pub shared: Arc<Shared>,
    /// In `replay --feedback`: the learner itself, applied after each batch.
    pub prequential: Option<Box<Prequential>>,
    /// Compute fingerprints for the learner (intel lists are loaded).
    pub fingerprints: bool,
}

/// Loads the model the configuration asks for (`None` when it is disabled). Whoever
/// adopts it publishes it ([`crate::export::metrics::model_info`]).
pub fn load_model(cfg: &Config) -> Result<Option<Arc<ModelBundle>>, InferenceError> {
    if !cfg.model.enabled {
        return Ok(None);
    }
    let variant = cfg.model.variant.as_deref();
    let bundle = match &cfg.model.path {
        Some(p) => ModelBundle::from_path(p, variant)?,
        None => ModelBundle::embedded(variant)?,
    };
    Ok(Some(Arc::new(bundle)))
}

impl Worker {
    /// A worker whose table holds `capacity` flows.
    pub fn new(cfg: &Config, capacity: usize, outputs: Outputs) -> Self {
        Self {
            table: FlowTable::new(&cfg.flow, capacity),
            stats: Stats::default(),
            records: Vec::new(),
            outputs,
            events_buf: Lines::default(),
            features_buf: Lines::default(),
            eve_buf: Lines::default(),
            classifier: None,
            max_wait: Duration::ZERO,
            reasons: cfg.model.reasons,
            cfg_reasons_budget: cfg.model.reasons_budget,
            reason_rows: crate::config::REASONS_BURST_ROWS,
            pending: Vec::new(),
            queued: 0,
            oldest: None,
            verdicts: Vec::new(),
            learn: None,
            generation: 0,
            slot: None,
            history: None,
            history_delta: crate::export::live::Delta::new(),
        }
    }

    /// Counts verdicts per minute of capture time into `history` (the live page).
    #[must_use]
    pub fn with_history(mut self, history: &Arc<crate::export::live::History>) -> Self {
        self.history = Some(Arc::clone(history));
        self
    }

    /// Runs the model in `slot` (forked) and follows its swaps.
    #[must_use]
    pub fn with_slot(mut self, cfg: &Config, slot: &Arc<ModelSlot>) -> Self {
        let cur = slot.current.load();
        if let Ok(p) = cur.prototype.lock() {
            self.classifier = Some(p.fork());
            self.generation = cur.generation;
            self.max_wait = Duration::from_millis(cfg.model.max_wait_ms);
        }
        self.slot = Some(Arc::clone(slot));
        self
    }

    /// Picks up a swapped model (between batches; nothing queued is lost: the waiting
    /// flows run on the new model).
    fn follow_slot(&mut self) {
        let Some(slot) = &self.slot else { return };
        let cur = slot.current.load();
        if cur.generation != self.generation
            && let Ok(p) = cur.prototype.lock()
        {
            self.classifier = Some(p.fork());
            self.generation = cur.generation;
        }
    }

    /// Scores with the online-learned head and feeds the learner. In prequential mode
    /// partial batches only run at the end of input, so replays are reproducible.
    #[must_use]
    pub fn with_learning(mut self, learn: WorkerLearn) -> Self {
        if learn.prequential.is_some() {
            self.max_wait = Duration::MAX;
        }
        self.learn = Some(learn);
        self
    }

    /// Checks that the shared head reproduces this worker's graph (the metadata's head is
    /// the graph's softmax layer, or the resumed head was learned on this model's
    /// embeddings: then only the trained part is compared, on a fresh head).
    pub fn check_head(&mut self, trained: &Head) -> Result<(), LearnError> {
        self.classifier.as_mut().map_or(Ok(()), |c| crate::learn::check_head(c, trained))
    }

    /// The prequential learner, once the replay is over.
    pub fn take_prequential(&mut self) -> Option<Box<Prequential>> {
        self.learn.as_mut().and_then(|l| l.prequential.take())
    }

    /// Gives this worker its own classifier (the model optimised for `cfg.model.batch_size`).
    pub fn with_model(mut self, cfg: &Config, model: Option<&Arc<ModelBundle>>) -> Result<Self, InferenceError> {
        if let Some(bundle) = model {
            self.classifier = Some(Classifier::new(bundle.clone(), cfg.model.batch_size)?);
            self.max_wait = Duration::from_millis(cfg.model.max_wait_ms);
        }
        Ok(self)
    }

    /// Decodes and processes one frame; finished records are kept for [`Self::finish_records`].
    pub fn handle_frame(&mut self, frame: &Frame<'_>) {
        match decode_frame(frame.link, frame.ts_ns, frame.wire_len, frame.data) {
            Decoded::Tcp(pkt) => self.handle_packet(&pkt),
            other => count_not_tcp(&mut self.stats, frame.wire_len, &other),
        }
    }

    /// Processes one TCP packet decoded elsewhere (the sharded reader decodes each frame
    /// once and hands its workers the packets).
    pub fn handle_packet(&mut self, pkt: &Packet<'_>) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(pkt.wire_len);
        self.table.process(pkt, &mut self.stats, &mut self.records);
    }

    /// Advances the flow clock without a packet (live capture) and expires flows.
    pub fn tick(&mut self, now_ns: u64) {
        self.table.tick(now_ns, &mut self.stats, &mut self.records);
    }

    /// Ends every tracked flow (end of input) at once. Shutdown paths use
    /// [`Self::flush_in_chunks`], whose memory stays bounded.
    pub fn flush(&mut self) {
        self.table.flush(&mut self.stats, &mut self.records);
    }

    /// Ends every tracked flow, [`FLUSH_CHUNK_FLOWS`] at a time: each chunk's records go
    /// to `each`, are classified (a partial batch at once) and serialised, and `drain`
    /// takes the output buffers before the next chunk ends. Serialising a million flows
    /// into one buffer took 2.2-2.4 times the table's memory.
    pub fn flush_in_chunks<E>(
        &mut self,
        each: &mut dyn FnMut(&FlowRecord),
        mut drain: impl FnMut(&mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let done = self.table.flush_some(FLUSH_CHUNK_FLOWS, &mut self.stats, &mut self.records);
            self.finish_records(each);
            self.poll_batch(true);
            drain(self)?;
            if done {
                return Ok(());
            }
        }
    }

    /// Flows currently tracked.
    pub fn tracked_flows(&self) -> usize {
        self.table.len()
    }

    /// Takes the finished records: hands each to `each`, computes features, queues TLS
    /// and HTTP flows for the classifier (a full batch runs at once, a partial one once its
    /// oldest flow has waited `model.max_wait_ms`), and serialises flows whose verdict is
    /// known, in the order they finished.
    pub fn finish_records(&mut self, each: &mut dyn FnMut(&FlowRecord)) {
        let batch = self.classifier.as_ref().map_or(usize::MAX, Classifier::batch_size);
        let mut records = std::mem::take(&mut self.records);
        for rec in records.drain(..) {
            each(&rec);
            // Without outputs, flows are still classified when a model runs: the detection
            // counters are an output too.
            if !(self.outputs.events
                || self.outputs.features
                || self.outputs.eve.is_some()
                || self.classifier.is_some())
            {
                continue;
            }
            let classify = self.classifier.is_some() && rec.app != App::Other;
            let features = (self.outputs.features || classify).then(|| extract(&rec));
            if classify {
                self.queued += 1;
                self.oldest.get_or_insert_with(Instant::now);
            }
            let wants_fingerprints = self.outputs.events
                || self.outputs.eve.is_some()
                || self.learn.as_ref().is_some_and(|l| l.fingerprints);
            let fingerprints =
                if wants_fingerprints { Fingerprints::of(rec.tls.as_deref()) } else { Fingerprints::default() };
            self.pending.push(Pending { event: FlowEvent::new(rec, features, fingerprints), classify });
            if self.queued >= batch {
                self.run_batch();
            }
        }
        self.records = records;
        if self.queued == 0 {
            self.write_pending();
        } else {
            self.poll_batch(false);
        }
    }

    /// Runs the waiting partial batch if its oldest flow has waited long enough, or now
    /// when `force` (end of input, shutdown).
    pub fn poll_batch(&mut self, force: bool) {
        if self.queued > 0 && (force || self.oldest.is_some_and(|t| t.elapsed() >= self.max_wait)) {
            self.run_batch();
        }
    }

    fn run_batch(&mut self) {
        self.follow_slot();
        let Some(classifier) = self.classifier.as_mut() else { return };
        let flows: Vec<&FeatureVector> =
            self.pending.iter().filter(|p| p.classify).filter_map(|p| p.event.features.as_ref()).collect();
        let started = Instant::now();
        // The learned head, if it belongs to the model this worker runs.
        let head = self.learn.as_ref().map(|l| l.shared.head.load_full()).filter(|s| s.generation == self.generation);
        let res = match &head {
            Some(s) => classifier.classify_head(&flows, &s.head, &mut self.verdicts),
            None => classifier.classify(&flows, &mut self.verdicts),
        };
        match res {
            Ok(()) => {
                metrics::histogram!(crate::export::metrics::INFERENCE_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(crate::export::metrics::INFERENCE_BATCH).record(flows.len() as f64);
                self.stats.inference_batches += 1;
                self.stats.inferred_flows += flows.len() as u64;
                let mut verdicts = self.verdicts.drain(..);
                for p in self.pending.iter_mut().filter(|p| p.classify) {
                    if let Some(v) = verdicts.next() {
                        p.event.verdict = v;
                    }
                }
                drop(verdicts);
                if head.is_some()
                    && let Some(learn) = self.learn.as_mut()
                {
                    feed_learner(learn, classifier, self.generation, &self.pending);
                }
                if self.reasons {
                    self.explain(head.as_ref().map(|s| &s.head));
                }
            }
            Err(_) => self.stats.inference_errors += 1,
        }
        self.queued = 0;
        self.oldest = None;
        self.write_pending();
    }

    /// Adds reasons to the verdicts of this batch that are not benign (after the learner
    /// took the batch's embeddings: explaining runs the graph again).
    fn explain(&mut self, head: Option<&Head>) {
        let Some(classifier) = self.classifier.as_mut() else { return };
        // Most batches have nothing flagged: nothing to gather then.
        if !self.pending.iter().any(|p| p.classify && p.event.verdict.class != crate::inference::Class::Benign) {
            return;
        }
        let mut flows: Vec<&FeatureVector> = Vec::new();
        let mut verdicts: Vec<Verdict> = Vec::new();
        for p in self.pending.iter_mut().filter(|p| p.classify) {
            if let Some(fv) = p.event.features.as_ref() {
                flows.push(fv);
                verdicts.push(std::mem::replace(&mut p.event.verdict, Verdict::unknown()));
            }
        }
        let budget = self.cfg_reasons_budget;
        self.reason_rows = (self.reason_rows + budget * flows.len() as f64).min(crate::config::REASONS_BURST_ROWS);
        match classifier.explain(&flows, &mut verdicts, head, self.reason_rows as usize) {
            Ok(done) => {
                self.reason_rows -= done.rows as f64;
                self.stats.explained += done.explained as u64;
                self.stats.reasons_skipped += done.skipped as u64;
            }
            Err(_) => self.stats.inference_errors += 1,
        }
        drop(flows);
        let mut verdicts = verdicts.into_iter();
        for p in self.pending.iter_mut().filter(|p| p.classify && p.event.features.is_some()) {
            if let Some(v) = verdicts.next() {
                p.event.verdict = v;
            }
        }
    }

    fn write_pending(&mut self) {
        for p in self.pending.drain(..) {
            let f = &p.event.record;
            // Every TLS/HTTP flow gets a verdict (`unknown` without a model).
            if p.classify || (self.classifier.is_none() && f.app != App::Other) {
                self.stats.detections[p.event.verdict.class as usize] += 1;
                if self.history.is_some() {
                    self.history_delta.entry(f.last_ts / 60_000_000_000).or_default()
                        [p.event.verdict.class as usize] += 1;
                }
            }
            if !(self.outputs.events || self.outputs.features || self.outputs.eve.is_some()) {
                continue;
            }
            let cid = community_id(f.client_ip, f.client_port, f.server_ip, f.server_port);
            if self.outputs.events {
                self.events_buf.push_with(&cid, |out| p.event.write_json(&cid, out));
                self.stats.events += 1;
            }
            if let Some(types) = self.outputs.eve {
                self.eve_buf.push_with(&cid, |out| p.event.write_eve(&cid, types, out));
            }
            if self.outputs.features {
                self.features_buf.push_with(&cid, |out| p.event.write_features(&cid, out));
            }
        }
        if let Some(h) = &self.history
            && !self.history_delta.is_empty()
        {
            h.add(&self.history_delta);
            self.history_delta.clear();
        }
    }
}

/// Hands each flow just scored to the learner (prequential: applies its label now, so
/// the next batch sees the new head).
fn feed_learner(learn: &mut WorkerLearn, classifier: &Classifier, generation: u64, pending: &[Pending]) {
    let dim = classifier.embedding_dim;
    let scored = pending
        .iter()
        .filter(|p| p.classify)
        .zip(classifier.embeddings.chunks_exact(dim.max(1)))
        .zip(classifier.last_probs().chunks_exact(3));
    for ((p, e), probs) in scored {
        let f = &p.event.record;
        let class = crate::learn::head::argmax(probs);
        let (ja3, ja4, cert_sha1) = if learn.fingerprints {
            (
                p.event.fingerprints.ja3.as_ref().map(|x| x.hash.clone()),
                p.event.fingerprints.ja4.as_ref().map(|x| x.hash.clone()),
                f.tls.as_ref().and_then(|t| t.leaf.as_ref()).map(|l| l.sha1.clone()),
            )
        } else {
            (None, None, None)
        };
        let s = Scored {
            flow_id: f.id,
            tuple: (f.client_ip, f.client_port, f.server_ip, f.server_port),
            ts: f.last_ts as f64 / 1e9,
            start: f.first_ts as f64 / 1e9,
            embedding: e.to_vec(),
            class,
            top: probs[class],
            generation,
            ja3,
            ja4,
            cert_sha1,
        };
        match learn.prequential.as_mut() {
            Some(pq) => {
                if pq.after_scored(&s) {
                    learn.shared.publish(generation, pq.learner.state.head.clone());
                }
            }
            None => learn.shared.offer(s),
        }
    }
}

/// Processes pcap files on the calling thread with one worker and hands every flow
/// record to `each`. Used by tests and tools that want records, not JSON.
pub fn replay_records(
    cfg: &Config,
    files: &[PathBuf],
    each: &mut dyn FnMut(&FlowRecord),
) -> Result<Stats, CaptureError> {
    let mut w = Worker::new(cfg, cfg.flow.max_flows, Outputs::default());
    for path in files {
        let mut src = PcapFileSource::open(path)?;
        loop {
            let n = src.read_batch(BATCH_FRAMES, &mut |f| w.handle_frame(f))?;
            w.finish_records(each);
            if n == 0 {
                break;
            }
        }
    }
    w.flush_in_chunks(each, |_| Ok::<(), std::convert::Infallible>(())).unwrap_or_else(|e| match e {});
    Ok(w.stats)
}

/// Result of a replay.
#[derive(Debug, Default)]
pub struct Summary {
    /// Summed counters.
    pub stats: Stats,
    /// Wall time.
    pub elapsed: Duration,
    /// Files that ended with an error (the frames before the error were processed).
    pub file_errors: Vec<String>,
    /// Workers used.
    pub workers: usize,
    /// What online learning did (when it ran).
    pub learning: Option<LearningSummary>,
    /// SIGINT or SIGTERM stopped the reading before the files ended (every flow read so
    /// far was still ended and written).
    pub interrupted: bool,
}

/// Online learning in a replay.
#[derive(Debug, Default, serde::Serialize)]
pub struct LearningSummary {
    /// Head version at the end (0: as trained).
    pub head_version: u64,
    /// Labels read from the feedback file.
    pub labels: usize,
    /// Labels by outcome (applied, held_back, rate_limited, shadow, move_cap, ...).
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Reservoir examples.
    pub reservoir: usize,
    /// Held-back examples.
    pub holdout: usize,
    /// Rollbacks.
    pub rollbacks: u64,
    /// Drifts detected on the feedback error and score signals.
    pub drifts: [u64; 2],
}

impl LearningSummary {
    fn of(pq: &Prequential) -> Self {
        let l = &pq.learner;
        Self {
            head_version: l.state.head.version,
            labels: pq.labels.len,
            outcomes: pq.outcomes.clone(),
            reservoir: l.reservoir_len(),
            holdout: l.holdout_len(),
            rollbacks: l.state.rollbacks,
            drifts: [l.state.drift_error.detections, l.state.drift_score.detections],
        }
    }
}

/// How a replay learns: the shared head, and the prequential learner with `--feedback`.
struct ReplayLearn {
    shared: Arc<Shared>,
    trained: Head,
    prequential: Option<Box<Prequential>>,
    fingerprints: bool,
}

/// Prequential learning for a replay with a feedback file (resumed from
/// `learning.state_dir` when it holds a checkpoint of this model).
fn replay_learning(
    cfg: &Config,
    model: Option<&Arc<ModelBundle>>,
    feedback: Option<&Path>,
) -> Result<Option<ReplayLearn>, PipelineError> {
    let Some(bundle) = model.filter(|_| cfg.learning.enabled) else {
        return if feedback.is_some() { Err(LearnError::NoModel.into()) } else { Ok(None) };
    };
    if feedback.is_none() {
        return Ok(None);
    }
    let learner = crate::learn::start_learner(bundle, &cfg.learning)?;
    let trained = crate::learn::trained_head(bundle, &cfg.learning)?;
    // Nothing polls the reload flag in a prequential replay (the model stays).
    let shared = Arc::new(Shared::new(learner.state.head.clone(), None, Arc::default()));
    let prequential = match feedback {
        None => None,
        Some(p) => {
            let intel = crate::learn::intel::Intel::load(&cfg.learning.intel).map_err(LearnError::from)?;
            let labels = crate::learn::Labels::read(p)?;
            Some(Box::new(Prequential { learner, labels, intel, outcomes: std::collections::BTreeMap::new() }))
        }
    };
    let fingerprints = prequential.as_ref().is_some_and(|p| !p.intel.is_empty());
    Ok(Some(ReplayLearn { shared, trained, prequential, fingerprints }))
}

/// Counts a frame that is not for the TCP pipeline (a skip or a decode error).
fn count_not_tcp(stats: &mut Stats, wire_len: u32, decoded: &Decoded<'_>) {
    stats.packets += 1;
    stats.bytes += u64::from(wire_len);
    match decoded {
        Decoded::Skip(s) => stats.skip(*s),
        Decoded::Error(e) => stats.decode_error(*e),
        Decoded::Tcp(_) => {}
    }
}

/// Where serialised lines go: one [`LineSink`] per stream.
#[derive(Default)]
pub struct Sinks {
    /// Event lines.
    pub events: Option<Box<dyn LineSink>>,
    /// Feature lines.
    pub features: Option<Box<dyn LineSink>>,
    /// Suricata EVE records, of these types.
    pub eve: Option<(Box<dyn LineSink>, EveTypes)>,
}

impl Sinks {
    /// The sink of `stream`, if any.
    pub fn get_mut(&mut self, stream: Stream) -> Option<&mut Box<dyn LineSink>> {
        match stream {
            Stream::Events => self.events.as_mut(),
            Stream::Features => self.features.as_mut(),
            Stream::Eve => self.eve.as_mut().map(|(w, _)| w),
        }
    }

    /// What the workers should produce for these sinks.
    pub fn outputs(&self) -> Outputs {
        Outputs {
            events: self.events.is_some(),
            features: self.features.is_some(),
            eve: self.eve.as_ref().map(|e| e.1),
        }
    }

    /// Writes `lines` to the sink of `stream` (nothing without one).
    pub fn write(&mut self, stream: Stream, lines: &Lines) -> Result<(), PipelineError> {
        if let Some(s) = self.get_mut(stream)
            && !lines.is_empty()
        {
            s.write_lines(lines).map_err(|source| PipelineError::Output { what: stream.as_str(), source })?;
        }
        Ok(())
    }

    /// Flushes the sink of `stream`.
    pub fn flush_stream(&mut self, stream: Stream) -> Result<(), PipelineError> {
        if let Some(s) = self.get_mut(stream) {
            s.flush().map_err(|source| PipelineError::Output { what: stream.as_str(), source })?;
        }
        Ok(())
    }

    /// Flushes every sink.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        for stream in Stream::ALL {
            self.flush_stream(stream)?;
        }
        Ok(())
    }
}

impl Worker {
    /// The output buffer of `stream`.
    pub fn buf_mut(&mut self, stream: Stream) -> &mut Lines {
        match stream {
            Stream::Events => &mut self.events_buf,
            Stream::Features => &mut self.features_buf,
            Stream::Eve => &mut self.eve_buf,
        }
    }
}

/// Replays pcap files through `workers` shards and writes events and features.
/// `progress` receives (bytes read, total bytes) after each batch.
///
/// With `feedback` (a labels CSV) the replay is prequential: one worker scores each flow,
/// then learns its label, in capture order (see [`crate::learn`]).
///
/// With an [`Attach`] (a running control plane: model slot and learner; not with `feedback`)
/// the workers follow its model swaps and feed its learner, and its reload flag is polled
/// between batches.
pub fn replay(
    cfg: &Config,
    files: &[PathBuf],
    sinks: Sinks,
    feedback: Option<&Path>,
    control: Option<&dyn Attach>,
    stop: Option<&std::sync::atomic::AtomicBool>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, PipelineError> {
    let start = Instant::now();
    let total: u64 = files.iter().map(|p| file_len(p)).sum();
    let (model, learn) = if control.is_some() && feedback.is_none() {
        (None, None)
    } else {
        let model = load_model(cfg)?;
        if let Some(b) = &model {
            crate::export::metrics::model_info(&b.label(), b.meta.created_unix);
        }
        let learn = replay_learning(cfg, model.as_ref(), feedback)?;
        (model, learn)
    };
    let control = control.filter(|_| feedback.is_none());
    // Prequential learning is sequential by definition: one worker.
    let workers = if feedback.is_some() { 1 } else { cfg.worker_count().max(1) };
    let setup = Setup { model: model.as_ref(), learn, control, stop };
    let mut summary = if workers == 1 {
        replay_inline(cfg, setup, files, sinks, &mut |pos| progress(pos, total))?
    } else {
        replay_sharded(cfg, &setup, workers, files, sinks, &mut |pos| progress(pos, total))?
    };
    summary.workers = workers;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// How a replay's workers get their model and learner.
struct Setup<'a> {
    model: Option<&'a Arc<ModelBundle>>,
    learn: Option<ReplayLearn>,
    control: Option<&'a dyn Attach>,
    /// Set by SIGINT/SIGTERM: stop reading, then end every flow as at the end of input.
    stop: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Setup<'_> {
    fn worker(&mut self, cfg: &Config, capacity: usize, outputs: Outputs) -> Result<Worker, PipelineError> {
        let w = Worker::new(cfg, capacity, outputs);
        if let Some(c) = self.control {
            return Ok(c.attach(w));
        }
        let mut w = w.with_model(cfg, self.model)?;
        if let Some(l) = self.learn.as_mut() {
            w.check_head(&l.trained)?;
            w = w.with_learning(WorkerLearn {
                shared: Arc::clone(&l.shared),
                prequential: l.prequential.take(),
                fingerprints: l.fingerprints,
            });
        }
        Ok(w)
    }

    fn poll(&self) {
        if let Some(c) = self.control {
            c.poll();
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// One worker on the calling thread, reading the files and writing into the sinks
/// itself: no threads, no queues.
fn replay_inline(
    cfg: &Config,
    mut setup: Setup<'_>,
    files: &[PathBuf],
    mut sinks: Sinks,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, PipelineError> {
    let mut w = setup.worker(cfg, cfg.flow.max_flows, sinks.outputs())?;
    let mut reader = FileReader::new(files);
    let opts = Loop { stop: setup.stop, live: None, hand_out_bytes: OUTPUT_FLUSH_BYTES };
    let mut progress = |pos| {
        setup.poll();
        progress(pos);
    };
    let mut feed = FilesFeed { reader: &mut reader, progress: &mut progress, batch: BATCH_FRAMES };
    let interrupted = run_worker(&mut w, &mut feed, &mut Direct { sinks: &mut sinks }, &opts)?;
    sinks.flush()?;
    let mut summary = Summary { file_errors: reader.file_errors, interrupted, ..Summary::default() };
    if let Some(mut pq) = w.take_prequential() {
        crate::learn::save_checkpoint(&mut pq.learner);
        summary.learning = Some(LearningSummary::of(&pq));
    }
    summary.stats = w.stats;
    Ok(summary)
}

/// A reader (the calling thread) decodes every frame once and sends each TCP packet to
/// the worker of its flow (by symmetric flow hash, as RSS spreads live traffic over RX
/// queues); the workers' lines go to one writer thread. Every queue blocks when full:
/// nothing is dropped offline.
fn replay_sharded(
    cfg: &Config,
    setup: &Setup<'_>,
    workers: usize,
    files: &[PathBuf],
    sinks: Sinks,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, PipelineError> {
    let mut progress = |pos| {
        setup.poll();
        progress(pos);
    };
    let outputs = sinks.outputs();
    let capacity = cfg.flow.max_flows.div_ceil(workers);
    let (writer, out) = Writer::spawn(sinks, workers * QUEUE_DEPTH, Backpressure::Block, false)?;
    let (free_tx, free_rx) = bounded::<PacketBatch>(workers * (QUEUE_DEPTH + 2));
    let mut txs: Vec<Sender<PacketBatch>> = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = bounded::<PacketBatch>(QUEUE_DEPTH);
        txs.push(tx);
        let mut w = match setup.control {
            Some(c) => c.attach(Worker::new(cfg, capacity, outputs)),
            None => Worker::new(cfg, capacity, outputs).with_model(cfg, setup.model)?,
        };
        let mut feed = ShardFeed { rx, free: free_tx.clone() };
        let mut out = out.clone();
        let h = std::thread::Builder::new()
            .name(format!("nightjar-worker-{i}"))
            .spawn(move || -> Result<Stats, PipelineError> {
                let opts = Loop { stop: None, live: None, hand_out_bytes: HAND_OUT_BYTES };
                run_worker(&mut w, &mut feed, &mut out, &opts)?;
                Ok(w.stats)
            })
            .map_err(|source| PipelineError::Output { what: "worker thread", source })?;
        handles.push(h);
    }
    drop((out, free_tx));

    let mut reader = FileReader::new(files);
    let stopped = || setup.stopped();
    let stats = shard_frames(&mut reader, &txs, &free_rx, &stopped, &mut progress);
    let mut summary = Summary { stats, interrupted: stopped(), file_errors: reader.file_errors, ..Summary::default() };
    drop(txs);
    for (i, h) in handles.into_iter().enumerate() {
        let stats = h.join().map_err(|_| PipelineError::WorkerPanic(i))??;
        summary.stats.merge(&stats);
    }
    writer.join()?;
    Ok(summary)
}

/// Reads every frame, decodes it once, and sends each TCP packet to the worker of its
/// flow. Frames that are not TCP are counted here and go no further. Returns the
/// reader's counters.
fn shard_frames(
    reader: &mut FileReader<'_>,
    txs: &[Sender<PacketBatch>],
    free_rx: &Receiver<PacketBatch>,
    stopped: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(u64),
) -> Stats {
    let workers = txs.len();
    let mut stats = Stats::default();
    let mut batches: Vec<PacketBatch> = (0..workers).map(|_| PacketBatch::with_capacity(BATCH_FRAMES)).collect();
    let mut full: Vec<usize> = Vec::new();
    while !stopped() {
        let read = reader.read_batch(BATCH_FRAMES, &mut |f| match decode_frame(f.link, f.ts_ns, f.wire_len, f.data) {
            Decoded::Tcp(p) => {
                let shard = (FlowKey::of(p.src, p.sport, p.dst, p.dport).shard_hash() % workers as u64) as usize;
                batches[shard].push(&p);
                if batches[shard].len() == BATCH_FRAMES {
                    full.push(shard);
                }
            }
            other => count_not_tcp(&mut stats, f.wire_len, &other),
        });
        for shard in full.drain(..) {
            let fresh = free_rx.try_recv().unwrap_or_else(|_| PacketBatch::with_capacity(BATCH_FRAMES));
            let b = std::mem::replace(&mut batches[shard], fresh);
            if txs[shard].send(b).is_err() {
                // A worker is gone (it failed); its join reports why.
                return stats;
            }
        }
        progress(reader.position());
        if read.is_none() {
            break;
        }
    }
    for (shard, b) in batches.into_iter().enumerate() {
        if !b.is_empty() {
            let _ = txs[shard].send(b);
        }
    }
    stats
}
