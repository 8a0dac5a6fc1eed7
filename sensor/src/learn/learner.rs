//! The learner: turns labelled feedback into guarded updates of the [`Head`].
//!
//! For each label (after its source's rate limit): every `holdout_every`-th label of a
//! source is held back for evaluation; the others drive a candidate update: a few SGD
//! steps on the new example plus class-balanced samples of the replay reservoir (the labels
//! learned so far) and of the anchors (half of the model's reference flows, so what the
//! model knew is not forgotten). The candidate must then pass
//! - its source's hourly move budget (path length of the source's accepted updates, at
//!   most `max_move_per_hour` times its weight), and
//! - the shadow evaluation against the last checked head: on the reference pool and on
//!   the held-back pool of every other source at least as trusted, benign precision,
//!   malware recall and macro F1 may not fall by more than `shadow_tolerance` times the
//!   source's weight.
//!
//! Accepted candidates become the head (a new version) and the example joins the
//! reservoir at its source's weight; rejected labels leave no trace in training. Every
//! `rollback_check_every` held-back labels, the head is compared with the last checked one
//! on the reference and the most trusted sources' pools, and rolled back when worse. Two Page-Hinkley detectors watch the feedback error rate and
//! the score uncertainty.

use std::collections::{BTreeMap, VecDeque};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::drift::PageHinkley;
use super::head::{CLASSES, Head};
use crate::config::LearningConfig;
use crate::metric_names as m;

/// One labelled embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The flow's embedding.
    pub e: Vec<f32>,
    /// Its class.
    pub y: u8,
    /// Weight in replay: its source's weight (an untrusted source's labels stay weak in
    /// the reservoir too).
    #[serde(default = "full_weight")]
    pub w: f32,
}

fn full_weight() -> f32 {
    1.0
}

impl Example {
    /// A labelled embedding of full weight.
    pub fn new(e: Vec<f32>, y: u8) -> Self {
        Self { e, y, w: 1.0 }
    }
}

/// A label for a scored flow.
#[derive(Clone, Debug)]
pub struct Feedback {
    /// The flow's embedding.
    pub embedding: Vec<f32>,
    /// Class 0, 1 or 2.
    pub label: usize,
    /// Configured source name.
    pub source: String,
    /// The class the sensor gave the flow when it scored it, when known.
    pub scored: Option<usize>,
    /// Time of the label, seconds (capture time in replay).
    pub now: f64,
    /// The flow's 5-tuple and start, for the log of accepted labels.
    pub flow: Option<(super::Tuple, f64)>,
}

nightjar_common::label_enum! {
    /// What became of one label.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Outcome {
        /// Drove an accepted update.
        Applied => "applied",
        /// Kept back for evaluation.
        HeldBack => "held_back",
        /// Source over its rate.
        RateLimited => "rate_limited",
        /// No such source configured.
        UnknownSource => "unknown_source",
        /// Bad class or embedding.
        Invalid => "invalid",
        /// The candidate update moved the head too far this hour.
        MoveCap => "move_cap",
        /// The candidate update made an evaluation pool worse.
        Shadow => "shadow",
        /// The source had labelled this flow already.
        Duplicate => "duplicate",
    }
}

/// Rate-limit and holdout state of one source.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceState {
    tokens: f64,
    last: f64,
    started: bool,
    labels: u64,
    /// Start of this source's current move-cap hour.
    #[serde(default)]
    window_start: Option<f64>,
    /// Distance its accepted updates moved the head in that hour (path length).
    #[serde(default)]
    moved: f32,
}

/// Everything the learner keeps across restarts (see [`super::checkpoint`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LearnerState {
    /// SHA-256 of the model file the head belongs to.
    pub model_sha256: String,
    /// The current head.
    pub head: Head,
    /// The head last confirmed by a rollback check.
    pub champion: Head,
    /// Replay reservoir of learned labels, per class.
    pub reservoir: Vec<Vec<Example>>,
    /// Examples offered to each class's reservoir (reservoir sampling).
    pub reservoir_seen: Vec<u64>,
    /// Held-back labels per source.
    pub holdout: BTreeMap<String, VecDeque<Example>>,
    /// Per-source rate-limit state.
    pub sources: BTreeMap<String, SourceState>,
    /// Feedback error drift detector.
    pub drift_error: PageHinkley,
    /// Score uncertainty drift detector.
    pub drift_score: PageHinkley,
    /// Labels seen (all outcomes), for reproducible sampling.
    pub labels_seen: u64,
    /// Held-back labels added since the last rollback check.
    pub since_check: usize,
    /// Rollbacks done.
    pub rollbacks: u64,
}

/// The learner (owned by one thread).
pub struct Learner {
    cfg: LearningConfig,
    /// State that checkpoints keep.
    pub state: LearnerState,
    /// Half of the model's reference flows, for shadow evaluation (not checkpointed: they
    /// come with the model).
    reference_pool: Vec<Example>,
    /// The other half, per class, replayed with every step so what the model knew is kept.
    anchors: Vec<Vec<Example>>,
    initial_norm: f32,
    /// The trained head's metrics on the reference pool: the last checked head may never
    /// be more than the tolerance below them (candidates: twice), however slowly updates
    /// creep.
    trained_floor: [f32; 3],
    /// Accepted updates since the last checkpoint.
    pub unsaved: u64,
    /// `feedback.csv` in the state directory, opened on the first accepted label.
    log: Option<std::io::BufWriter<std::fs::File>>,
    /// Flows each source already labelled (hash of source, 5-tuple and start), the most
    /// recent `cache_flows`: one label per flow per source.
    labelled: lru::LruCache<u64, ()>,
}

/// The identity of one source's label of one flow.
fn label_key(source: &str, flow: &(super::Tuple, f64)) -> u64 {
    let ((a, p, b, q), start) = flow;
    let text = format!("{source}|{a}|{p}|{b}|{q}|{}", start.to_bits());
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// Benign precision, malware recall and macro F1 of `head` on `pool`.
pub fn pool_metrics(head: &Head, pool: &[Example]) -> [f32; 3] {
    let mut cm = [[0u32; CLASSES]; CLASSES];
    for ex in pool {
        cm[usize::from(ex.y)][head.predict(&ex.e)] += 1;
    }
    let prec = |c: usize| {
        let p: u32 = (0..CLASSES).map(|t| cm[t][c]).sum();
        if p == 0 { 1.0 } else { cm[c][c] as f32 / p as f32 }
    };
    let rec = |c: usize| {
        let t: u32 = cm[c].iter().sum();
        if t == 0 { 1.0 } else { cm[c][c] as f32 / t as f32 }
    };
    let f1 = |c: usize| {
        let (p, r) = (prec(c), rec(c));
        if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 }
    };
    [prec(0), rec(2), (0..CLASSES).map(f1).sum::<f32>() / CLASSES as f32]
}

impl Learner {
    /// A fresh learner for a model: `head` as trained, `reference` the model's labelled
    /// reference embeddings (alternately to the anchors and to the shadow pool).
    pub fn new(cfg: &LearningConfig, model_sha256: &str, head: Head, reference: &[Example]) -> Self {
        let mut anchors = vec![Vec::new(); CLASSES];
        let mut reference_pool = Vec::new();
        for (i, ex) in reference.iter().enumerate() {
            if i % 2 == 0 {
                anchors[usize::from(ex.y).min(CLASSES - 1)].push(ex.clone());
            } else {
                reference_pool.push(ex.clone());
            }
        }
        let initial_norm = head.norm().max(1e-6);
        let trained_floor = pool_metrics(&head, &reference_pool);

        let state = LearnerState {
            model_sha256: model_sha256.to_owned(),
            champion: head.clone(),
            head,
            reservoir: vec![Vec::new(); CLASSES],
            reservoir_seen: vec![0; CLASSES],
            holdout: BTreeMap::new(),
            sources: BTreeMap::new(),
            drift_error: PageHinkley::default(),
            drift_score: PageHinkley::default(),
            labels_seen: 0,
            since_check: 0,
            rollbacks: 0,
        };
        let cap = std::num::NonZeroUsize::new(cfg.cache_flows.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            cfg: cfg.clone(),
            state,
            reference_pool,
            anchors,
            initial_norm,
            trained_floor,
            unsaved: 0,
            log: None,
            labelled: lru::LruCache::new(cap),
        }
    }

    /// A learner resumed from a checkpoint's state (the reference pool comes from the
    /// model, as in [`Self::new`]).
    pub fn resume(cfg: &LearningConfig, state: LearnerState, reference: &[Example], trained: &Head) -> Self {
        let mut l = Self::new(cfg, &state.model_sha256, trained.clone(), reference);
        l.state = state;
        l
    }

    /// The configuration.
    pub fn config(&self) -> &LearningConfig {
        &self.cfg
    }

    /// Examples in the reservoir.
    pub fn reservoir_len(&self) -> usize {
        self.state.reservoir.iter().map(Vec::len).sum()
    }

    /// Held-back labels over all sources.
    pub fn holdout_len(&self) -> usize {
        self.state.holdout.values().map(VecDeque::len).sum()
    }

    /// Feeds the score-uncertainty detector with one scored flow's top probability;
    /// true on drift.
    pub fn observe_score(&mut self, top_prob: f32) -> bool {
        let drift =
            self.state.drift_score.update(f64::from(1.0 - top_prob), self.cfg.drift_delta, self.cfg.drift_score_lambda);
        if drift {
            metrics::counter!(m::LEARN_DRIFTS, "signal" => "score").increment(1);
        }
        drift
    }

    /// Current drift scores (1.0 and above: drift) for the error and score signals.
    pub fn drift_scores(&self) -> (f64, f64) {
        (
            self.state.drift_error.score(self.cfg.drift_error_lambda),
            self.state.drift_score.score(self.cfg.drift_score_lambda),
        )
    }

    fn rate_ok(&mut self, source: &str, now: f64) -> Option<bool> {
        let sc = self.cfg.sources.get(source)?;
        let (rate, burst) = (f64::from(sc.labels_per_hour) / 3600.0, f64::from(sc.burst));
        let st = self.state.sources.entry(source.to_owned()).or_default();
        if !st.started {
            *st = SourceState { tokens: burst, last: now, started: true, ..std::mem::take(st) };
        }
        let dt = (now - st.last).max(0.0);
        st.tokens = (st.tokens + dt * rate).min(burst);
        st.last = st.last.max(now);
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            Some(true)
        } else {
            Some(false)
        }
    }

    /// Applies one label. Errors are outcomes, never panics.
    pub fn apply(&mut self, fb: &Feedback) -> Outcome {
        self.state.labels_seen += 1;
        let out = self.apply_inner(fb);
        if matches!(out, Outcome::Applied | Outcome::HeldBack | Outcome::Shadow | Outcome::MoveCap) {
            self.log_label(fb);
        }
        metrics::counter!(m::LEARN_FEEDBACK, "source" => self.source_label(&fb.source), "outcome" => out.as_str())
            .increment(1);
        match out {
            Outcome::Applied => metrics::counter!(m::LEARN_UPDATES_APPLIED).increment(1),
            Outcome::MoveCap | Outcome::Shadow => {
                metrics::counter!(m::LEARN_UPDATES_REJECTED, "reason" => out.as_str()).increment(1);
            }
            _ => {}
        }
        metrics::gauge!(m::LEARN_HEAD_VERSION).set(self.state.head.version as f64);
        let (de, ds) = self.drift_scores();
        metrics::gauge!(m::LEARN_DRIFT_SCORE, "signal" => "error").set(de);
        metrics::gauge!(m::LEARN_DRIFT_SCORE, "signal" => "score").set(ds);
        out
    }

    /// Appends a label that passed the source checks to `feedback.csv` in the state
    /// directory, in the labels format of `model/` (`dataset`) and of `replay --feedback`
    /// (class by name; `family` names the source), so a retraining run can use it.
    fn log_label(&mut self, fb: &Feedback) {
        use std::io::Write as _;
        let (Some(dir), Some(((ci, cp, si, sp), start))) = (&self.cfg.state_dir, fb.flow) else { return };
        if self.log.is_none() {
            let path = dir.join("feedback.csv");
            let fresh = !path.exists();
            let opened = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
            match opened {
                Ok(f) => {
                    let mut w = std::io::BufWriter::new(f);
                    if fresh {
                        let _ = writeln!(w, "client_ip,client_port,server_ip,server_port,start_ts,class,family,source");
                    }
                    self.log = Some(w);
                }
                Err(e) => {
                    eprintln!("warning: cannot open {}: {e}; accepted labels are not logged", path.display());
                    return;
                }
            }
        }
        let class = ["benign", "attack", "malware"][fb.label.min(2)];
        if let Some(w) = self.log.as_mut() {
            let _ = writeln!(w, "{ci},{cp},{si},{sp},{start:.6},{class},feedback:{0},{0}", fb.source);
        }
    }

    /// Flushes the log of accepted labels (with each checkpoint).
    pub fn flush_log(&mut self) {
        use std::io::Write as _;
        if let Some(w) = self.log.as_mut() {
            let _ = w.flush();
        }
    }

    /// Source names are operator-configured (a bounded set); anything else is `other`.
    fn source_label(&self, s: &str) -> String {
        if self.cfg.sources.contains_key(s) { s.to_owned() } else { "other".to_owned() }
    }

    fn apply_inner(&mut self, fb: &Feedback) -> Outcome {
        let dim = self.state.head.dim;
        if fb.label >= CLASSES || fb.embedding.len() != dim || !fb.embedding.iter().all(|v| v.is_finite()) {
            return Outcome::Invalid;
        }
        if !self.cfg.sources.contains_key(&fb.source) {
            return Outcome::UnknownSource;
        }
        // One label per flow per source: a repeated label would count the flow again (in
        // updates and the reservoir) and spend the source's budget for nothing.
        if let Some(flow) = &fb.flow {
            let key = label_key(&fb.source, flow);
            if self.labelled.put(key, ()).is_some() {
                return Outcome::Duplicate;
            }
        }
        match self.rate_ok(&fb.source, fb.now) {
            None => return Outcome::UnknownSource,
            Some(false) => return Outcome::RateLimited,
            Some(true) => {}
        }
        if let Some(scored) = fb.scored
            && self.state.drift_error.update(
                f64::from(u8::from(scored != fb.label)),
                self.cfg.drift_delta,
                self.cfg.drift_error_lambda,
            )
        {
            metrics::counter!(m::LEARN_DRIFTS, "signal" => "error").increment(1);
        }
        let weight = self.cfg.sources.get(&fb.source).map_or(1.0, |s| s.weight);
        let ex = Example { e: fb.embedding.clone(), y: fb.label as u8, w: weight };
        let st = self.state.sources.entry(fb.source.clone()).or_default();
        st.labels += 1;
        if st.labels.is_multiple_of(u64::from(self.cfg.holdout_every)) {
            let pool = self.state.holdout.entry(fb.source.clone()).or_default();
            pool.push_back(ex);
            while pool.len() > self.cfg.holdout_per_source {
                pool.pop_front();
            }
            // The shadow evaluation reads each pool as one slice.
            pool.make_contiguous();
            self.state.since_check += 1;
            if self.state.since_check >= self.cfg.rollback_check_every {
                self.state.since_check = 0;
                self.rollback_check();
            }
            return Outcome::HeldBack;
        }
        let candidate = self.candidate(&ex);
        // The move cap, per source (a flooding source spends its own budget, not the
        // others'): the path length of its accepted updates in the hour, at most
        // `max_move_per_hour` times its weight, relative to the trained layer's norm.
        let step = candidate.distance(&self.state.head);
        let budget = self.cfg.max_move_per_hour * weight * self.initial_norm;
        let st = self.state.sources.entry(fb.source.clone()).or_default();
        if !st.window_start.is_some_and(|t| fb.now - t < 3600.0) {
            st.window_start = Some(fb.now);
            st.moved = 0.0;
        }
        if st.moved + step > budget {
            return Outcome::MoveCap;
        }
        // Against the last checked head, so that many small steps cannot creep away
        // from it; a source's own held-back labels do not vouch for its updates.
        // A source may cost at most its weight times the tolerance: an untrusted source's
        // updates must leave every pool almost exactly as it was.
        if !self.no_worse(
            &candidate,
            &self.state.champion,
            Some(&fb.source),
            weight,
            self.cfg.shadow_tolerance * weight,
        ) {
            return Outcome::Shadow;
        }
        if let Some(st) = self.state.sources.get_mut(&fb.source) {
            st.moved += step;
        }
        self.state.head = candidate;
        self.state.head.version += 1;
        self.add_to_reservoir(ex);
        self.unsaved += 1;
        Outcome::Applied
    }

    /// The head after SGD steps on the new example and class-balanced replay of the
    /// reservoir and of the anchors.
    fn candidate(&self, ex: &Example) -> Head {
        let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ self.state.labels_seen.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut head = self.state.head.clone();
        let mut batch: Vec<(&[f32], usize, f32)> = Vec::new();
        for _ in 0..self.cfg.steps_per_label {
            batch.clear();
            for _ in 0..self.cfg.repeat_new {
                batch.push((&ex.e, usize::from(ex.y), ex.w));
            }
            for (c, pool) in self.state.reservoir.iter().chain(&self.anchors).enumerate() {
                if pool.is_empty() {
                    continue;
                }
                for _ in 0..self.cfg.batch_per_class.min(pool.len()) {
                    let r = &pool[rng.random_range(0..pool.len())];
                    batch.push((&r.e, c % CLASSES, r.w));
                }
            }
            head.sgd_step(&batch, self.cfg.learning_rate);
        }
        head
    }

    /// True when `candidate` is within `tol` of `base` on every evaluation pool: the
    /// reference, and the held-back labels of every source but `except` whose weight is at
    /// least `min_weight` (a less trusted source's labels cannot veto a more trusted
    /// source's updates: a poisoner's held-back pool would otherwise block honest learning).
    fn no_worse(&self, candidate: &Head, base: &Head, except: Option<&str>, min_weight: f32, tol: f32) -> bool {
        let weight = |s: &str| self.cfg.sources.get(s).map_or(0.0, |c| c.weight);
        let pools = std::iter::once(self.reference_pool.as_slice()).chain(
            self.state
                .holdout
                .iter()
                .filter(|(s, p)| {
                    p.len() >= self.cfg.shadow_min_flows && except != Some(s.as_str()) && weight(s) >= min_weight
                })
                .map(|(_, p)| p.as_slices().0),
        );
        for pool in pools {
            if pool.is_empty() {
                continue;
            }
            let (c, b) = (pool_metrics(candidate, pool), pool_metrics(base, pool));
            if c.iter().zip(&b).any(|(c, b)| *c < *b - tol) {
                return false;
            }
        }
        true
    }

    fn rollback_check(&mut self) {
        let tol = self.cfg.shadow_tolerance;
        let floor_ok = pool_metrics(&self.state.head, &self.reference_pool)
            .iter()
            .zip(&self.trained_floor)
            .all(|(m, f)| *m >= *f - tol);
        // The head mixes every source's updates: the most trusted sources' labels judge it.
        let top = self.cfg.sources.values().map(|c| c.weight).fold(0.0, f32::max);
        if floor_ok && self.no_worse(&self.state.head, &self.state.champion, None, top, tol) {
            self.state.champion = self.state.head.clone();
        } else {
            let version = self.state.head.version + 1;
            self.state.head = self.state.champion.clone();
            self.state.head.version = version;
            self.state.rollbacks += 1;
            self.unsaved += 1;
            metrics::counter!(m::LEARN_ROLLBACKS).increment(1);
        }
    }

    fn add_to_reservoir(&mut self, ex: Example) {
        let c = usize::from(ex.y);
        self.state.reservoir_seen[c] += 1;
        let pool = &mut self.state.reservoir[c];
        if pool.len() < self.cfg.reservoir_per_class {
            pool.push(ex);
        } else {
            // Algorithm R: the n-th example replaces a random slot with probability cap/n.
            let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ self.state.reservoir_seen[c]);
            let j = rng.random_range(0..self.state.reservoir_seen[c]);
            if let Ok(j) = usize::try_from(j)
                && j < pool.len()
            {
                pool[j] = ex;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const DIM: usize = 8;

    /// Three well-separated clusters (benign, attack, malware) on the first three axes.
    fn point(rng: &mut StdRng, center: [f32; DIM]) -> Vec<f32> {
        center.iter().map(|c| c + rng.random_range(-0.4..0.4)).collect()
    }

    fn centers() -> [[f32; DIM]; 3] {
        let mut c = [[0.0; DIM]; 3];
        for (k, row) in c.iter_mut().enumerate() {
            row[k] = 2.0;
        }
        c
    }

    fn trained() -> Head {
        let w: Vec<Vec<f32>> = centers().iter().map(|c| c.to_vec()).collect();
        Head::from_trained(&w, &[0.0; 3], 1.0, 16, 1).expect("head")
    }

    fn reference(rng: &mut StdRng) -> Vec<Example> {
        (0..600).map(|i| Example::new(point(rng, centers()[i % 3]), (i % 3) as u8)).collect()
    }

    fn cfg() -> LearningConfig {
        let mut c = LearningConfig::default();
        c.sources.insert(
            "analyst".into(),
            SourceConfig { labels_per_hour: 100_000, burst: 10_000, ..SourceConfig::default() },
        );
        c
    }

    fn fb(e: Vec<f32>, label: usize, source: &str, now: f64) -> Feedback {
        Feedback { embedding: e, label, source: source.into(), scored: None, now, flow: None }
    }

    /// A "new malware family": a cluster the trained head calls benign (near the benign
    /// axis, shifted on an axis the trained layer ignores).
    fn new_family(rng: &mut StdRng) -> Vec<f32> {
        let mut c = centers()[0];
        c[4] = 2.0;
        point(rng, c)
    }

    #[test]
    fn learns_a_new_family_without_forgetting() {
        let mut rng = StdRng::seed_from_u64(3);
        let refs = reference(&mut rng);
        let mut l = Learner::new(&cfg(), "sha", trained(), &refs);
        let probe: Vec<Vec<f32>> = (0..200).map(|_| new_family(&mut rng)).collect();
        let recall = |h: &Head| probe.iter().filter(|e| h.predict(e) == 2).count() as f32 / probe.len() as f32;
        assert!(recall(&l.state.head) < 0.05);
        let before = pool_metrics(&l.state.head, &refs);
        let mut outcomes = BTreeMap::new();
        for i in 0..200 {
            let o = l.apply(&fb(new_family(&mut rng), 2, "analyst", f64::from(i)));
            *outcomes.entry(o.as_str()).or_insert(0) += 1;
        }
        let after = pool_metrics(&l.state.head, &refs);
        assert!(recall(&l.state.head) >= 0.9, "recall {} outcomes {outcomes:?}", recall(&l.state.head));
        assert!(after[0] >= before[0] - 0.01 && after[1] >= before[1] - 0.01, "{before:?} -> {after:?}");
        assert_eq!(outcomes.get("held_back"), Some(&40));
        assert!(l.state.head.version > 0);
    }

    #[test]
    fn shadow_evaluation_contains_flipped_labels() {
        // No rate limit and no move cap: only the shadow evaluation stands in the way of
        // 1,000 flipped labels (benign marked malware and malware marked benign) on
        // traffic like the reference. With tolerance t, candidates stay within t of the
        // last checked head, which stays within t of the trained one: 2t in all.
        let mut rng = StdRng::seed_from_u64(5);
        let refs = reference(&mut rng);
        let mut c = cfg();
        c.max_move_per_hour = 1e9;
        c.shadow_tolerance = 0.01;
        c.sources.insert(
            "feed".into(),
            SourceConfig { labels_per_hour: 1_000_000, burst: 1_000_000, ..SourceConfig::default() },
        );
        let mut l = Learner::new(&c, "sha", trained(), &refs);
        let test: Vec<Example> = reference(&mut rng);
        let before = pool_metrics(&l.state.head, &test);
        let mut applied = 0;
        for i in 0..1000 {
            let (truth, wrong) = if i % 2 == 0 { (0, 2) } else { (2, 0) };
            if l.apply(&fb(point(&mut rng, centers()[truth]), wrong, "feed", f64::from(i))) == Outcome::Applied {
                applied += 1;
            }
        }
        let after = pool_metrics(&l.state.head, &test);
        // 2t on the reference pool; a fresh sample adds its sampling error.
        assert!(
            (before[0] - after[0]).abs() < 0.03,
            "benign precision {} -> {} ({applied} applied)",
            before[0],
            after[0]
        );
        assert!(
            (before[1] - after[1]).abs() < 0.03,
            "malware recall {} -> {} ({applied} applied)",
            before[1],
            after[1]
        );
    }

    #[test]
    fn a_less_trusted_source_cannot_veto_a_trusted_one() {
        // `feed` (weight 0.1) first labels 300 flows of the new family benign: 60 of them
        // held back, a pool that would reject every update calling the family malware.
        // The analyst's labels must still be learned.
        let mut rng = StdRng::seed_from_u64(17);
        let refs = reference(&mut rng);
        let mut c = cfg();
        c.sources.insert(
            "feed".into(),
            SourceConfig { weight: 0.1, labels_per_hour: 1_000_000, burst: 1_000_000, ..SourceConfig::default() },
        );
        let mut l = Learner::new(&c, "sha", trained(), &refs);
        for i in 0..300 {
            l.apply(&fb(new_family(&mut rng), 0, "feed", f64::from(i)));
        }
        assert!(l.state.holdout["feed"].len() >= c.shadow_min_flows);
        for i in 0..200 {
            l.apply(&fb(new_family(&mut rng), 2, "analyst", f64::from(300 + i)));
        }
        let probe: Vec<Vec<f32>> = (0..200).map(|_| new_family(&mut rng)).collect();
        let recall = probe.iter().filter(|e| l.state.head.predict(e) == 2).count() as f32 / probe.len() as f32;
        assert!(recall >= 0.9, "recall {recall}");
        // The feed's accepted labels (all benign) sit in the reservoir at its weight.
        assert!(l.state.reservoir[0].iter().all(|ex| (ex.w - 0.1).abs() < 1e-6));
    }

    #[test]
    fn rate_limits_sources_and_refuses_bad_input() {
        let mut rng = StdRng::seed_from_u64(9);
        let refs = reference(&mut rng);
        let mut c = cfg();
        c.sources.insert("slow".into(), SourceConfig { labels_per_hour: 3600, burst: 3, ..SourceConfig::default() });
        let mut l = Learner::new(&c, "sha", trained(), &refs);
        let e = point(&mut rng, centers()[0]);
        let outs: Vec<Outcome> = (0..4).map(|_| l.apply(&fb(e.clone(), 0, "slow", 100.0))).collect();
        assert_eq!(outs[3], Outcome::RateLimited, "{outs:?}");
        // One token per second comes back.
        assert_ne!(l.apply(&fb(e.clone(), 0, "slow", 101.5)), Outcome::RateLimited);
        assert_eq!(l.apply(&fb(e.clone(), 0, "nobody", 0.0)), Outcome::UnknownSource);
        assert_eq!(l.apply(&fb(e.clone(), 3, "analyst", 0.0)), Outcome::Invalid);
        assert_eq!(l.apply(&fb(vec![f32::NAN; DIM], 0, "analyst", 0.0)), Outcome::Invalid);
        assert_eq!(l.apply(&fb(vec![0.0; DIM + 1], 0, "analyst", 0.0)), Outcome::Invalid);
    }

    #[test]
    fn one_label_per_flow_per_source() {
        let mut rng = StdRng::seed_from_u64(10);
        let refs = reference(&mut rng);
        let mut c = cfg();
        c.sources.insert("feed".into(), SourceConfig::default());
        let mut l = Learner::new(&c, "sha", trained(), &refs);
        let e = point(&mut rng, centers()[2]);
        let ip = |x: u8| std::net::IpAddr::from([198, 18, 0, x]);
        let flow = ((ip(1), 40000, ip(2), 443), 1.5);
        let label = |source: &str, now: f64| Feedback { flow: Some(flow), ..fb(e.clone(), 2, source, now) };
        // The same flow posted 600 times by one source: one label counts, 599 are duplicates.
        let outs: Vec<Outcome> = (0..600).map(|i| l.apply(&label("analyst", f64::from(i)))).collect();
        assert_ne!(outs[0], Outcome::Duplicate);
        assert!(outs[1..].iter().all(|o| *o == Outcome::Duplicate), "{:?}", &outs[..5]);
        assert!(l.state.reservoir[2].len() + l.holdout_len() <= 1, "one copy at most");
        // Another source may label the same flow once.
        assert_ne!(l.apply(&label("feed", 700.0)), Outcome::Duplicate);
        assert_eq!(l.apply(&label("feed", 701.0)), Outcome::Duplicate);
        // Another flow of the same source is not a duplicate.
        let other = Feedback { flow: Some((flow.0, 2.5)), ..fb(e.clone(), 2, "analyst", 800.0) };
        assert_ne!(l.apply(&other), Outcome::Duplicate);
    }

    #[test]
    fn move_cap_bounds_an_hour_of_updates() {
        let mut rng = StdRng::seed_from_u64(11);
        let refs = reference(&mut rng);
        let mut c = cfg();
        c.max_move_per_hour = 0.05;
        c.shadow_tolerance = 1.0;
        c.learning_rate = 0.01;
        c.steps_per_label = 1;
        let mut l = Learner::new(&c, "sha", trained(), &refs);
        let start = l.state.head.clone();
        let outs: Vec<Outcome> =
            (0..100).map(|i| l.apply(&fb(new_family(&mut rng), 2, "analyst", f64::from(i)))).collect();
        assert!(outs.contains(&Outcome::MoveCap));
        assert!(l.state.head.distance(&start) <= 0.05 * start.norm() + 1e-4);
        // The budget is per source: another source still moves the head this hour.
        c.sources.insert(
            "other".into(),
            SourceConfig { labels_per_hour: 100_000, burst: 10_000, ..SourceConfig::default() },
        );
        l.cfg = c;
        let other: Vec<Outcome> = (0..3).map(|_| l.apply(&fb(new_family(&mut rng), 2, "other", 99.0))).collect();
        assert!(other.contains(&Outcome::Applied), "{other:?}");
        // A new hour: moving again is allowed.
        let later: Vec<Outcome> = (0..3).map(|_| l.apply(&fb(new_family(&mut rng), 2, "analyst", 4000.0))).collect();
        assert!(later.contains(&Outcome::Applied), "{later:?}");
    }

    #[test]
    fn checkpoints_round_trip_and_a_corrupt_one_falls_back() {
        let mut rng = StdRng::seed_from_u64(13);
        let refs = reference(&mut rng);
        let dir = tempfile::tempdir().expect("tmp");
        let mut l = Learner::new(&cfg(), "sha", trained(), &refs);
        super::super::checkpoint::save(dir.path(), &l.state).expect("save 1");
        let first = l.state.clone();
        for i in 0..20 {
            l.apply(&fb(new_family(&mut rng), 2, "analyst", f64::from(i)));
        }
        super::super::checkpoint::save(dir.path(), &l.state).expect("save 2");
        let (got, refused) = super::super::checkpoint::load(dir.path());
        assert!(refused.is_empty());
        assert_eq!(got.as_ref(), Some(&l.state));
        // Flip one byte of the newest: refused with a clear error, the previous one is used.
        let p = super::super::checkpoint::path(dir.path());
        let mut bytes = std::fs::read(&p).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'1' { b'2' } else { b'1' };
        std::fs::write(&p, bytes).expect("write");
        let (got, refused) = super::super::checkpoint::load(dir.path());
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].to_string().contains("corrupt"), "{}", refused[0]);
        assert_eq!(got, Some(first));
    }
}
