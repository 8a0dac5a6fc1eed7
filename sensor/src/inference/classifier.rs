//! One worker's classifier: the tract plan of the model, optimised once for a fixed batch
//! shape, and the batch buffers it fills. A batch runs with `plan.run` (a fresh state per
//! call: the LSTM's state must not leak from one batch into the next); short batches are
//! zero-padded to the fixed shape.
//!
//! Without the `model` feature (the fuzz build) a classifier cannot be built: `new` says so.

use std::sync::Arc;

#[cfg(feature = "model")]
use tract_onnx::prelude::*;

use super::explain::{self, Group, MIN_DELTA};
use super::head::Head;
use super::model::{Decision, InferenceError, ModelBundle, Novelty, UnknownScope};
use super::preprocess::{Preprocess, SEQ_COLUMNS};
use super::{Class, MAX_REASONS, Reason, Verdict};
#[cfg(feature = "model")]
use crate::features::FEATURE_NAMES;
use crate::features::{FeatureVector, SEQ_LEN};

/// A loaded, optimised model with its buffers.
pub struct Classifier {
    #[cfg(feature = "model")]
    plan: Arc<TypedRunnableModel>,
    bundle: Arc<ModelBundle>,
    label: String,
    batch: usize,
    n_static: usize,
    url_width: usize,
    static_buf: Vec<f32>,
    seq_buf: Vec<f32>,
    url_buf: Vec<f32>,
    /// Character input width (0: the graph has none).
    chars_width: usize,
    chars_buf: Vec<i64>,
    /// App of each row of the last batch (index into `decisions`).
    apps: Vec<usize>,
    /// Decision rule per app: tls, http, other.
    decisions: [Decision; 3],
    /// Novelty of the embeddings (the metadata's `ood` block), when the model has one.
    novelty: Option<Arc<Novelty>>,
    /// The last batch's embeddings (row-major, `embedding_dim` per flow), for online learning.
    pub embeddings: Vec<f32>,
    /// Width of one embedding.
    pub embedding_dim: usize,
    probs: Vec<f32>,
    /// Occlusion groups of [`Self::explain`].
    groups: Arc<Vec<Group>>,
    /// (flow, group) rows of an explanation, and their probabilities.
    jobs: Vec<(usize, usize)>,
    job_probs: Vec<f32>,
}

impl Classifier {
    /// Without the `model` feature: refuses, naming the missing feature.
    #[cfg(not(feature = "model"))]
    #[expect(clippy::needless_pass_by_value, reason = "same signature as with the feature")]
    pub fn new(bundle: Arc<ModelBundle>, _batch: usize) -> Result<Self, InferenceError> {
        Err(InferenceError::Load {
            version: bundle.meta.model_version.clone(),
            reason: "this build has no classifier (cargo feature `model` is off)".into(),
        })
    }

    #[cfg(not(feature = "model"))]
    #[expect(clippy::unused_self, reason = "same signature as with the feature")]
    fn run_raw(&mut self, _rows: usize, _probs: &mut Vec<f32>) -> Result<(), InferenceError> {
        Err(InferenceError::Run("this build has no classifier".into()))
    }

    /// Optimises `bundle`'s graph for batches of `batch` flows.
    #[cfg(feature = "model")]
    pub fn new(bundle: Arc<ModelBundle>, batch: usize) -> Result<Self, InferenceError> {
        let batch = batch.max(1);
        let n_static = FEATURE_NAMES.len();
        let url_width = bundle.preprocess.url_width();
        let chars_width = bundle.meta.chars;
        let load = |e: TractError| InferenceError::Load {
            version: bundle.meta.model_version.clone(),
            reason: format!("{e:#}"),
        };
        // Parse the ONNX protobuf. Intermediate shapes recorded by the exporter or the
        // quantiser carry a symbolic batch that would clash with the fixed one: ignore them.
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut bundle.onnx.as_slice())
            .map_err(load)?;
        // Fix the input shapes: [B, static], [B, T, 12], [B, vocab].
        let model = model
            .with_input_fact(0, f32::fact([batch, n_static]).into())
            .and_then(|m| m.with_input_fact(1, f32::fact([batch, SEQ_LEN, SEQ_COLUMNS]).into()))
            .and_then(|m| m.with_input_fact(2, f32::fact([batch, url_width]).into()))
            .and_then(|m| {
                if chars_width > 0 { m.with_input_fact(3, i64::fact([batch, chars_width]).into()) } else { Ok(m) }
            })
            .map_err(load)?;
        // Type, declutter and optimise for this machine, then plan the execution.
        let plan = model.into_optimized().and_then(IntoRunnable::into_runnable).map_err(load)?;
        let rules = decisions(&bundle);
        let novelty = bundle_novelty(&bundle);
        let mut c = Self {
            plan,
            label: bundle.label(),
            bundle,
            batch,
            n_static,
            url_width,
            static_buf: vec![0.0; batch * n_static],
            seq_buf: vec![0.0; batch * SEQ_LEN * SEQ_COLUMNS],
            url_buf: vec![0.0; batch * url_width],
            chars_width,
            chars_buf: vec![0; batch * chars_width],
            apps: vec![2; batch],
            decisions: rules,
            novelty,
            embeddings: Vec::new(),
            embedding_dim: 0,
            probs: Vec::new(),
            groups: Arc::new(explain::groups()),
            jobs: Vec::new(),
            job_probs: Vec::new(),
        };
        // One run on zeros: proves the graph runs and learns the embedding width.
        let mut probs = Vec::new();
        c.run_raw(0, &mut probs)?;
        if let Some(n) = &c.novelty
            && n.dim() != c.embedding_dim
        {
            return Err(InferenceError::Load {
                version: c.bundle.meta.model_version.clone(),
                reason: format!("ood block of width {} for embeddings of width {}", n.dim(), c.embedding_dim),
            });
        }
        Ok(c)
    }

    /// A classifier on the same optimised plan with buffers of its own: what each worker
    /// takes from a model loaded once (start-up, hot swap) without optimising it again.
    #[must_use]
    pub fn fork(&self) -> Self {
        Self {
            #[cfg(feature = "model")]
            plan: Arc::clone(&self.plan),
            bundle: Arc::clone(&self.bundle),
            label: self.label.clone(),
            batch: self.batch,
            n_static: self.n_static,
            url_width: self.url_width,
            static_buf: vec![0.0; self.static_buf.len()],
            seq_buf: vec![0.0; self.seq_buf.len()],
            url_buf: vec![0.0; self.url_buf.len()],
            chars_width: self.chars_width,
            chars_buf: vec![0; self.chars_buf.len()],
            apps: vec![2; self.batch],
            decisions: self.decisions,
            novelty: self.novelty.clone(),
            embeddings: Vec::new(),
            embedding_dim: self.embedding_dim,
            probs: Vec::new(),
            groups: Arc::clone(&self.groups),
            jobs: Vec::new(),
            job_probs: Vec::new(),
        }
    }

    /// The model's novelty block (`ood` in its metadata), when it has one.
    pub fn novelty(&self) -> Option<&Novelty> {
        self.novelty.as_deref()
    }

    /// `version/variant` of the model.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Flows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    #[cfg(feature = "model")]
    fn run_raw(&mut self, rows: usize, probs: &mut Vec<f32>) -> Result<(), InferenceError> {
        let run = |e: TractError| InferenceError::Run(format!("{e:#}"));
        let stat = Tensor::from_shape(&[self.batch, self.n_static], &self.static_buf).map_err(run)?;
        let seq = Tensor::from_shape(&[self.batch, SEQ_LEN, SEQ_COLUMNS], &self.seq_buf).map_err(run)?;
        let url = Tensor::from_shape(&[self.batch, self.url_width], &self.url_buf).map_err(run)?;
        let mut inputs: TVec<TValue> = tvec!(stat.into(), seq.into(), url.into());
        if self.chars_width > 0 {
            inputs.push(Tensor::from_shape(&[self.batch, self.chars_width], &self.chars_buf).map_err(run)?.into());
        }
        let out = self.plan.run(inputs).map_err(run)?;
        let p = out[0].to_plain_array_view::<f32>().map_err(run)?;
        let e = out[1].to_plain_array_view::<f32>().map_err(run)?;
        let p = p.as_slice().ok_or_else(|| InferenceError::Run("probabilities not contiguous".into()))?;
        let e = e.as_slice().ok_or_else(|| InferenceError::Run("embeddings not contiguous".into()))?;
        self.embedding_dim = e.len() / self.batch;
        probs.clear();
        probs.extend_from_slice(&p[..rows * 3]);
        self.embeddings.clear();
        self.embeddings.extend_from_slice(&e[..rows * self.embedding_dim]);
        Ok(())
    }

    /// Class probabilities of up to `batch_size()` flows (3 per flow, in input order).
    pub fn probabilities(&mut self, flows: &[&FeatureVector], probs: &mut Vec<f32>) -> Result<(), InferenceError> {
        debug_assert!(flows.len() <= self.batch);
        let rows = flows.len().min(self.batch);
        for (i, fv) in flows.iter().take(rows).enumerate() {
            self.fill_row(i, fv, None);
        }
        self.pad_from(rows);
        self.run_raw(rows, probs)
    }

    /// Verdicts of up to `batch_size()` flows.
    pub fn classify(&mut self, flows: &[&FeatureVector], out: &mut Vec<Verdict>) -> Result<(), InferenceError> {
        let mut probs = std::mem::take(&mut self.probs);
        let res = self.probabilities(flows, &mut probs);
        out.clear();
        if res.is_ok() {
            out.extend(probs.chunks_exact(3).enumerate().map(|(i, p)| self.verdict(p, self.apps[i])));
            self.mark_novel(out);
        }
        self.probs = probs;
        res
    }

    /// A benign verdict on a flow unlike the training flows (its embedding beyond the
    /// `ood` block's `max_distance`) becomes `unknown`; alerts stay alerts.
    fn mark_novel(&self, out: &mut [Verdict]) {
        let (Some(n), dim) = (&self.novelty, self.embedding_dim) else { return };
        if dim == 0 {
            return;
        }
        for (v, e) in out.iter_mut().zip(self.embeddings.chunks_exact(dim)) {
            if v.class == Class::Benign && n.is_novel(e) {
                v.class = Class::Unknown;
            }
        }
    }

    /// Verdicts of up to `batch_size()` flows from the online-learned `head` applied to the
    /// graph's embeddings (the graph's own softmax layer is not used).
    pub fn classify_head(
        &mut self,
        flows: &[&FeatureVector],
        head: &Head,
        out: &mut Vec<Verdict>,
    ) -> Result<(), InferenceError> {
        let mut probs = std::mem::take(&mut self.probs);
        let res = self.probabilities(flows, &mut probs);
        self.probs = probs;
        out.clear();
        res?;
        if self.embedding_dim != head.dim {
            return Err(InferenceError::Run(format!(
                "head expects embeddings of width {}, the graph gives {}",
                head.dim, self.embedding_dim
            )));
        }
        self.probs.clear();
        for (i, e) in self.embeddings.chunks_exact(self.embedding_dim).enumerate() {
            let p = head.probs(e);
            let mut v = self.verdict(&p, self.apps[i]);
            v.head = Some(head.version);
            out.push(v);
            self.probs.extend_from_slice(&p);
        }
        self.mark_novel(out);
        Ok(())
    }

    /// The last batch's class probabilities, 3 per flow (from the head after
    /// [`Self::classify_head`], from the graph after [`Self::classify`]).
    pub fn last_probs(&self) -> &[f32] {
        &self.probs
    }

    /// Largest difference between the graph's probabilities and `head`'s on the same
    /// embeddings, over one batch of zero inputs: proves the head in the metadata is the
    /// graph's softmax layer.
    pub fn head_parity(&mut self, head: &Head) -> Result<f32, InferenceError> {
        self.static_buf.fill(0.0);
        self.seq_buf.fill(0.0);
        self.url_buf.fill(0.0);
        self.chars_buf.fill(0);
        let mut probs = Vec::new();
        let rows = self.batch;
        self.run_raw(rows, &mut probs)?;
        if self.embedding_dim != head.dim {
            return Ok(f32::INFINITY);
        }
        let mut worst = 0.0f32;
        for (p, e) in probs.chunks_exact(3).zip(self.embeddings.chunks_exact(self.embedding_dim)) {
            let q = head.probs(e);
            worst = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
        }
        Ok(worst)
    }

    /// The verdict for one row of probabilities under app `app`'s decision rule (0 tls,
    /// 1 http, 2 other): the log-probabilities shifted by the app's class offsets, the
    /// probabilities renormalised, then the top class unless it is below the app's
    /// `unknown_below` (within the rule's `unknown_scope`). The score is the shifted
    /// probability.
    fn verdict(&self, p: &[f32], app: usize) -> Verdict {
        let (class, score) = decide(&self.decisions[app.min(2)], p);
        Verdict { class, score: Some(score), model: Some(self.label.clone()), head: None, reasons: Vec::new() }
    }
}

impl Classifier {
    /// Probabilities under app `app`'s class log offsets, renormalised.
    fn shifted(&self, p: &[f32], app: usize) -> [f32; 3] {
        shift(&self.decisions[app.min(2)], p)
    }

    /// What an explanation measures for a verdict of `class`: its class probability
    /// (attack, malware), or the probability of not being benign (unknown).
    fn target(&self, p: &[f32], app: usize, class: Class) -> f32 {
        let q = self.shifted(p, app);
        match class {
            Class::Attack => q[1],
            Class::Malware => q[2],
            _ => 1.0 - q[0],
        }
    }

    /// Names of the occlusion groups.
    pub fn group_names(&self) -> Vec<&'static str> {
        self.groups.iter().map(|g| g.name).collect()
    }

    /// Writes `fv`'s inputs into row `row` of the batch buffers with group `group`
    /// (index into the groups) replaced by its neutral value.
    fn fill_row(&mut self, row: usize, fv: &FeatureVector, group: Option<usize>) {
        let (ns, nq, nu, nc) = (self.n_static, SEQ_LEN * SEQ_COLUMNS, self.url_width, self.chars_width);
        let (stat, seq, url) = (
            &mut self.static_buf[row * ns..(row + 1) * ns],
            &mut self.seq_buf[row * nq..(row + 1) * nq],
            &mut self.url_buf[row * nu..(row + 1) * nu],
        );
        self.bundle.preprocess.apply(fv, stat, seq, url);
        let chars = &mut self.chars_buf[row * nc..(row + 1) * nc];
        if nc > 0 {
            Preprocess::chars(fv, chars);
        }
        self.apps[row] = app_index(fv);
        let Some(g) = group.and_then(|g| self.groups.get(g)) else { return };
        // Standardised features: 0 is the training mean.
        for &i in &g.statics {
            stat[i] = 0.0;
        }
        if !g.seq_cols.is_empty() {
            for t in 0..SEQ_LEN {
                seq[t * SEQ_COLUMNS + g.seq_cols.start..t * SEQ_COLUMNS + g.seq_cols.end].fill(0.0);
            }
        }
        if g.url {
            url.fill(0.0);
        }
        if g.chars {
            chars.fill(0);
        }
    }

    /// Zeroes the batch rows from `rows` on (their outputs are discarded).
    fn pad_from(&mut self, rows: usize) {
        let (ns, nq, nu, nc) = (self.n_static, SEQ_LEN * SEQ_COLUMNS, self.url_width, self.chars_width);
        self.static_buf[rows * ns..].fill(0.0);
        self.seq_buf[rows * nq..].fill(0.0);
        self.url_buf[rows * nu..].fill(0.0);
        self.chars_buf[rows * nc..].fill(0);
    }

    /// Class probabilities of `fv` with the group named `group` occluded (`None`: as it
    /// is), from the graph or from `head` on its embeddings. What [`Self::explain`] measures,
    /// one flow at a time (for tests and tools).
    pub fn probabilities_without(
        &mut self,
        fv: &FeatureVector,
        group: Option<&str>,
        head: Option<&Head>,
    ) -> Result<[f32; 3], InferenceError> {
        let g = match group {
            Some(name) => Some(
                self.groups
                    .iter()
                    .position(|g| g.name == name)
                    .ok_or_else(|| InferenceError::Run(format!("no occlusion group {name:?}")))?,
            ),
            None => None,
        };
        self.fill_row(0, fv, g);
        self.pad_from(1);
        let mut probs = Vec::new();
        self.run_raw(1, &mut probs)?;
        let p = match head {
            Some(h) => h.probs(&self.embeddings[..self.embedding_dim]),
            None => [probs[0], probs[1], probs[2]],
        };
        Ok(p)
    }

    /// The score [`Self::explain`] measures for a verdict of `class` on `fv` of its app,
    /// from probabilities `p`.
    pub fn explained_score(&self, fv: &FeatureVector, p: &[f32], class: Class) -> f32 {
        self.target(p, app_index(fv), class)
    }

    /// Adds reasons to every verdict of `verdicts` that is not benign (and came from the
    /// model), in order, as long as their occlusion rows fit in `max_rows`: the groups
    /// whose occlusion lowers the verdict's probability by at least [`MIN_DELTA`],
    /// strongest first, at most [`MAX_REASONS`]. `flows` and `verdicts` are those of the
    /// last [`Self::classify`] / [`Self::classify_head`] (same order); `head` is the head
    /// that decided, if any. Overwrites [`Self::embeddings`]: take what online learning
    /// needs first. Returns the rows run, the verdicts explained and those left without
    /// reasons for want of rows.
    pub fn explain(
        &mut self,
        flows: &[&FeatureVector],
        verdicts: &mut [Verdict],
        head: Option<&Head>,
        max_rows: usize,
    ) -> Result<Explained, InferenceError> {
        let base: Vec<f32> = std::mem::take(&mut self.probs);
        let mut jobs = std::mem::take(&mut self.jobs);
        jobs.clear();
        let mut done = Explained::default();
        for (i, (fv, v)) in flows.iter().zip(verdicts.iter()).enumerate() {
            if v.class == Class::Benign || v.score.is_none() {
                continue;
            }
            let app = app_index(fv);
            let n = self.groups.iter().filter(|g| g.applies(fv, app)).count();
            // Batches have a fixed shape: a partial one costs a full one.
            if (jobs.len() + n).div_ceil(self.batch) * self.batch > max_rows {
                done.skipped += 1;
                continue;
            }
            done.explained += 1;
            jobs.extend(self.groups.iter().enumerate().filter(|(_, g)| g.applies(fv, app)).map(|(g, _)| (i, g)));
        }
        done.rows = jobs.len().div_ceil(self.batch) * self.batch;
        let mut res = Ok(());
        let mut deltas = std::mem::take(&mut self.job_probs);
        deltas.clear();
        let mut probs = Vec::new();
        for chunk in jobs.chunks(self.batch) {
            for (r, &(i, g)) in chunk.iter().enumerate() {
                self.fill_row(r, flows[i], Some(g));
            }
            self.pad_from(chunk.len());
            if let Err(e) = self.run_raw(chunk.len(), &mut probs) {
                res = Err(e);
                break;
            }
            for (r, &(i, _)) in chunk.iter().enumerate() {
                let p = match head {
                    Some(h) => h.probs(&self.embeddings[r * self.embedding_dim..(r + 1) * self.embedding_dim]),
                    None => [probs[r * 3], probs[r * 3 + 1], probs[r * 3 + 2]],
                };
                let app = app_index(flows[i]);
                let class = verdicts[i].class;
                let full = base.get(i * 3..i * 3 + 3).map_or(0.0, |b| self.target(b, app, class));
                deltas.push(full - self.target(&p, app, class));
            }
        }
        if res.is_ok() {
            let mut k = 0;
            while k < jobs.len() {
                let i = jobs[k].0;
                let end = k + jobs[k..].iter().take_while(|j| j.0 == i).count();
                let mut ranked: Vec<(usize, f32)> = (k..end).map(|j| (jobs[j].1, deltas[j])).collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let tokens = self.top_tokens(flows[i]);
                let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
                verdicts[i].reasons = ranked
                    .into_iter()
                    .filter(|(_, d)| *d >= MIN_DELTA)
                    .take(MAX_REASONS)
                    .map(|(g, delta)| {
                        let name = self.groups[g].name;
                        Reason { group: name, label: explain::label(name, flows[i], &tokens), delta }
                    })
                    .collect();
                k = end;
            }
        }
        self.probs = base;
        self.jobs = jobs;
        self.job_probs = deltas;
        res.map(|()| done)
    }

    /// The flow's URI tokens of the model's vocabulary that weigh most (TF-IDF), words
    /// before punctuation, at most three.
    fn top_tokens(&self, fv: &FeatureVector) -> Vec<String> {
        let mut t: Vec<(&String, f32)> =
            fv.url_tokens.iter().filter_map(|t| self.bundle.preprocess.idf_of(t).map(|w| (t, w))).collect();
        t.sort_by(|a, b| {
            let word = |s: &str| s.chars().any(char::is_alphanumeric);
            word(b.0).cmp(&word(a.0)).then(b.1.total_cmp(&a.1))
        });
        t.dedup_by(|a, b| a.0 == b.0);
        t.into_iter().take(3).map(|(s, _)| s.chars().take(20).collect()).collect()
    }
}

/// What one [`Classifier::explain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Explained {
    /// Occlusion rows run, counted in whole batches (what they cost).
    pub rows: usize,
    /// Verdicts explained.
    pub explained: usize,
    /// Flagged verdicts left without reasons (no rows left).
    pub skipped: usize,
}

/// Row of the app flags at the head of the static features (`app_tls`, `app_http`).
fn app_index(fv: &FeatureVector) -> usize {
    match fv.static_features.get(..2) {
        Some([t, _]) if *t > 0.5 => 0,
        Some([_, h]) if *h > 0.5 => 1,
        _ => 2,
    }
}

/// One row of probabilities with each class's log-probability shifted by `d`'s offsets,
/// renormalised (`model/nightjar_model/decision.py` does the same on logits).
fn shift(d: &Decision, p: &[f32]) -> [f32; 3] {
    let q = [p[0] * d.benign_log_offset.exp(), p[1], p[2] * d.malware_log_offset.exp()];
    let total = q[0] + q[1] + q[2];
    if total > 0.0 { q.map(|v| v / total) } else { q }
}

/// One row of probabilities under rule `d`: the class and its shifted probability
/// (`model/nightjar_model/decision.py`'s `deployed`).
fn decide(d: &Decision, p: &[f32]) -> (Class, f32) {
    let q = shift(d, p);
    let (best, score) =
        q.into_iter().enumerate().fold((0, f32::MIN), |acc, (i, v)| if v > acc.1 { (i, v) } else { acc });
    let may_be_unknown = best == 0 || d.unknown_scope == UnknownScope::All;
    let class = if score < d.unknown_below && may_be_unknown {
        Class::Unknown
    } else {
        [Class::Benign, Class::Attack, Class::Malware][best]
    };
    (class, score)
}

#[cfg(feature = "model")]
fn bundle_novelty(bundle: &ModelBundle) -> Option<Arc<Novelty>> {
    bundle.meta.ood.as_ref().and_then(Novelty::new).map(Arc::new)
}

#[cfg(feature = "model")]
/// The decision rules of tls, http and other flows: the metadata's per-app rule, else the
/// top-level `unknown_below` without offset.
fn decisions(bundle: &ModelBundle) -> [Decision; 3] {
    let base = Decision {
        benign_log_offset: 0.0,
        malware_log_offset: 0.0,
        unknown_below: bundle.meta.unknown_below,
        unknown_scope: UnknownScope::All,
    };
    ["tls", "http", "other"].map(|app| bundle.meta.decision.get(app).copied().unwrap_or(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(b: f32, m: f32) -> Decision {
        Decision { benign_log_offset: b, malware_log_offset: m, unknown_below: 0.0, unknown_scope: UnknownScope::All }
    }

    #[test]
    fn unknown_scope_benign_never_hides_an_alert() {
        let weak_benign = [0.45, 0.35, 0.2];
        let weak_attack = [0.2, 0.42, 0.38];
        let weak_malware = [0.3, 0.3, 0.4];
        let sure = [0.9, 0.05, 0.05];
        let all = Decision { unknown_below: 0.5, ..rule(0.0, 0.0) };
        let benign = Decision { unknown_scope: UnknownScope::Benign, ..all };
        let classes = |d: &Decision| [weak_benign, weak_attack, weak_malware, sure].map(|p| decide(d, &p).0);
        assert_eq!(classes(&all), [Class::Unknown, Class::Unknown, Class::Unknown, Class::Benign]);
        assert_eq!(classes(&benign), [Class::Unknown, Class::Attack, Class::Malware, Class::Benign]);
        // The score is the shifted top-class probability either way.
        assert!((decide(&benign, &weak_attack).1 - 0.42).abs() < 1e-6);
        // Metadata without the field keeps the old rule.
        let old: Decision = serde_json::from_str(r#"{"benign_log_offset": 0.0, "unknown_below": 0.5}"#).unwrap();
        assert_eq!(old.unknown_scope, UnknownScope::All);
        let new: Decision = serde_json::from_str(r#"{"unknown_below": 0.5, "unknown_scope": "benign"}"#).unwrap();
        assert_eq!(new.unknown_scope, UnknownScope::Benign);
    }

    #[test]
    fn class_offsets_shift_and_renormalise() {
        let p = [0.2, 0.45, 0.35];
        let same = shift(&rule(0.0, 0.0), &p);
        assert!(same.iter().zip(p).all(|(a, b)| (a - b).abs() < 1e-6));
        // Doubling malware's odds: 0.7 against 0.45 and 0.2, renormalised.
        let q = shift(&rule(0.0, 2f32.ln()), &p);
        let total = 0.2 + 0.45 + 0.7;
        for (got, want) in q.iter().zip([0.2 / total, 0.45 / total, 0.7 / total]) {
            assert!((got - want).abs() < 1e-6, "{q:?}");
        }
        // A benign offset alone is the rule of older metadata.
        let benign = shift(&rule(1.0, 0.0), &p);
        assert!(benign[0] > p[0] && (benign.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // All-zero probabilities stay zero (no division by zero, no NaN).
        assert!(shift(&rule(0.0, 0.0), &[0.0; 3]).iter().all(|v| v.abs() < f32::EPSILON));
    }
}
