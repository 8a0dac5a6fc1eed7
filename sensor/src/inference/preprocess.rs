//! The preprocessing fitted in `model/` and stored in the model's metadata: per-column
//! standardisation of the static features and of the packet/record sequence columns, and
//! TF-IDF over the URL tokens; the HTTP characters become ids (byte + 1, 0 = padding).
//! This mirrors `model/nightjar_model/schema.py`
//! (`Preprocessing`) operation for operation; `tests/model_parity.rs` fails if they part.
//!
//! Writes straight into the batch buffers: no allocation per flow.

use std::collections::HashMap;

use serde::Deserialize;

use crate::features::{FeatureVector, SEQ_LEN};

/// Standardised values are clipped to this many standard deviations.
const CLIP: f32 = 10.0;

/// The fitted parameters, as stored in the metadata file.
#[derive(Clone, Debug, Deserialize)]
pub struct PreprocessingJson {
    /// Mean of each static feature.
    pub static_mean: Vec<f32>,
    /// Standard deviation of each static feature (1 where it was ~0).
    pub static_std: Vec<f32>,
    /// Mean of each sequence column (packet columns, then record columns).
    pub seq_mean: Vec<f32>,
    /// Standard deviation of each sequence column.
    pub seq_std: Vec<f32>,
    /// URL token vocabulary, in column order.
    pub url_vocab: Vec<String>,
    /// IDF weight of each vocabulary token.
    pub url_idf: Vec<f32>,
}

/// Ready-to-apply preprocessing.
#[derive(Clone, Debug)]
pub struct Preprocess {
    static_mean: Vec<f32>,
    static_inv_std: Vec<f32>,
    seq_mean: Vec<f32>,
    seq_inv_std: Vec<f32>,
    vocab: HashMap<String, usize>,
    idf: Vec<f32>,
}

/// Sequence columns per step: packet columns then record columns.
pub const SEQ_COLUMNS: usize = 12;

fn scale(x: f32, mean: f32, inv_std: f32) -> f32 {
    ((x - mean) * inv_std).clamp(-CLIP, CLIP)
}

impl Preprocess {
    /// Builds from the stored parameters; `None` when their lengths are inconsistent.
    pub fn new(p: &PreprocessingJson, n_static: usize) -> Option<Self> {
        if p.static_mean.len() != n_static
            || p.static_std.len() != n_static
            || p.seq_mean.len() != SEQ_COLUMNS
            || p.seq_std.len() != SEQ_COLUMNS
            || p.url_vocab.len() != p.url_idf.len()
        {
            return None;
        }
        let inv = |v: &[f32]| v.iter().map(|s| if *s > 0.0 { 1.0 / s } else { 1.0 }).collect();
        Some(Self {
            static_mean: p.static_mean.clone(),
            static_inv_std: inv(&p.static_std),
            seq_mean: p.seq_mean.clone(),
            seq_inv_std: inv(&p.seq_std),
            vocab: p.url_vocab.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect(),
            idf: p.url_idf.clone(),
        })
    }

    /// IDF weight of a vocabulary token, `None` outside the vocabulary.
    pub fn idf_of(&self, token: &str) -> Option<f32> {
        self.vocab.get(token).map(|&j| self.idf[j])
    }

    /// Width of the URL input (at least 1, as the exported graph has).
    pub fn url_width(&self) -> usize {
        self.idf.len().max(1)
    }

    /// Writes one flow's character ids into a row of the character buffer: byte + 1 for
    /// each of the first `chars.len()` bytes, 0 after the end.
    pub fn chars(fv: &FeatureVector, chars: &mut [i64]) {
        chars.fill(0);
        for (out, b) in chars.iter_mut().zip(&fv.chars) {
            *out = i64::from(*b) + 1;
        }
    }

    /// Writes one flow's inputs into row slices of the batch buffers.
    pub fn apply(&self, fv: &FeatureVector, stat: &mut [f32], seq: &mut [f32], url: &mut [f32]) {
        for (i, out) in stat.iter_mut().enumerate() {
            *out =
                scale(fv.static_features.get(i).copied().unwrap_or(0.0), self.static_mean[i], self.static_inv_std[i]);
        }
        for t in 0..SEQ_LEN {
            let row = &mut seq[t * SEQ_COLUMNS..(t + 1) * SEQ_COLUMNS];
            let p = fv.packets.get(t).copied().unwrap_or([0.0; 6]);
            let r = fv.records.get(t).copied().unwrap_or([0.0; 6]);
            for (c, v) in p.iter().chain(r.iter()).enumerate() {
                row[c] = scale(*v, self.seq_mean[c], self.seq_inv_std[c]);
            }
        }
        url.fill(0.0);
        if fv.url_tokens.is_empty() || self.idf.is_empty() {
            return;
        }
        let len = fv.url_tokens.len() as f64;
        // Term counts first (as Python's Counter), then tf * idf.
        for t in &fv.url_tokens {
            if let Some(&j) = self.vocab.get(t) {
                url[j] += 1.0;
            }
        }
        let mut norm = 0.0f32;
        for (j, v) in url.iter_mut().enumerate() {
            if *v > 0.0 {
                *v = ((f64::from(*v) / len) * f64::from(self.idf[j])) as f32;
                norm += *v * *v;
            }
        }
        let norm = norm.sqrt();
        if norm > 0.0 {
            for v in url.iter_mut() {
                *v /= norm;
            }
        }
    }
}
