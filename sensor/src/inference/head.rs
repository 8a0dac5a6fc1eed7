//! The classifier head that learns online: the trained softmax layer (`W e + b`, read from
//! the model metadata) plus a residual hidden layer (`V relu(U e + c)`) whose output starts
//! at zero, so a fresh head gives exactly the trained model's probabilities and online
//! updates can still bend the decision boundary around a cluster the trained layer cannot
//! separate linearly. `e` is the LSTM's last hidden state (the ONNX `embedding` output).
//! It lives in `inference`, which runs it; `learn` trains it (and re-exports it).

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Classes the head scores.
pub const CLASSES: usize = 3;

/// Largest L2 norm of one parameter's gradient per step (steps stay bounded even on
/// outliers far from the training data).
const GRAD_CLIP: f32 = 5.0;

/// Parameters of the head, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Embedding width.
    pub dim: usize,
    /// Hidden units of the residual layer.
    pub hidden: usize,
    /// Softmax temperature (fixed; calibrated in training).
    pub temperature: f32,
    /// Trained layer, `CLASSES x dim`.
    pub w: Vec<f32>,
    /// Trained layer bias.
    pub b: Vec<f32>,
    /// Residual layer input weights, `hidden x dim`.
    pub u: Vec<f32>,
    /// Residual layer bias.
    pub c: Vec<f32>,
    /// Residual layer output weights, `CLASSES x hidden` (zero at the start).
    pub v: Vec<f32>,
    /// Incremented by every accepted update (0: as trained).
    pub version: u64,
}

/// Largest weight a head may hold: trained weights are L2-regularised (a few units) and
/// online updates are capped, so anything near this is forged or broken (and would
/// overflow the logits).
pub const MAX_WEIGHT: f32 = 1.0e4;
/// Largest softmax temperature.
pub const MAX_TEMPERATURE: f32 = 1.0e3;

/// Why a head could not be built from the model metadata.
#[derive(Debug, thiserror::Error)]
#[error("model head: {0}")]
pub struct HeadError(pub String);

impl Head {
    /// The head of a trained model: `weight` is `CLASSES x dim`. The residual layer's
    /// input weights are drawn from `seed` (uniform, variance 1/dim); its output is zero.
    pub fn from_trained(
        weight: &[Vec<f32>],
        bias: &[f32],
        temperature: f32,
        hidden: usize,
        seed: u64,
    ) -> Result<Self, HeadError> {
        if weight.len() != CLASSES || bias.len() != CLASSES {
            return Err(HeadError(format!(
                "expected {CLASSES} classes, got {} rows and {} biases",
                weight.len(),
                bias.len()
            )));
        }
        let dim = weight[0].len();
        if dim == 0 || weight.iter().any(|r| r.len() != dim) {
            return Err(HeadError("weight rows differ in width".into()));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(HeadError(format!("temperature {temperature} is not positive")));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let a = (3.0 / dim as f32).sqrt();
        let u = (0..hidden * dim).map(|_| rng.random_range(-a..a)).collect();
        let h = Self {
            dim,
            hidden,
            temperature,
            w: weight.iter().flatten().copied().collect(),
            b: bias.to_vec(),
            u,
            c: vec![0.0; hidden],
            v: vec![0.0; CLASSES * hidden],
            version: 0,
        };
        h.check()?;
        Ok(h)
    }

    /// Checks the shapes (a checkpoint read from disk).
    pub fn check(&self) -> Result<(), HeadError> {
        let ok = self.w.len() == CLASSES * self.dim
            && self.b.len() == CLASSES
            && self.u.len() == self.hidden * self.dim
            && self.c.len() == self.hidden
            && self.v.len() == CLASSES * self.hidden
            && self.temperature > 0.0
            && self.temperature <= MAX_TEMPERATURE
            && self.params().all(|p| p.is_finite() && p.abs() <= MAX_WEIGHT);
        if ok {
            Ok(())
        } else {
            Err(HeadError(format!(
                "inconsistent shapes, or weights that are not finite or beyond +-{MAX_WEIGHT} (temperature in (0, {MAX_TEMPERATURE}])"
            )))
        }
    }

    fn params(&self) -> impl Iterator<Item = f32> + '_ {
        self.w.iter().chain(&self.b).chain(&self.u).chain(&self.c).chain(&self.v).copied()
    }

    /// Hidden activations and logits of one embedding.
    fn forward(&self, e: &[f32], h: &mut [f32], z: &mut [f32; CLASSES]) {
        for (j, hj) in h.iter_mut().enumerate() {
            let row = &self.u[j * self.dim..(j + 1) * self.dim];
            *hj = (dot(row, e) + self.c[j]).max(0.0);
        }
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = dot(&self.w[k * self.dim..(k + 1) * self.dim], e)
                + self.b[k]
                + dot(&self.v[k * self.hidden..(k + 1) * self.hidden], h);
        }
    }

    /// Class probabilities of one embedding.
    pub fn probs(&self, e: &[f32]) -> [f32; CLASSES] {
        let mut h = vec![0.0; self.hidden];
        let mut z = [0.0; CLASSES];
        self.forward(e, &mut h, &mut z);
        softmax(&z, self.temperature)
    }

    /// The predicted class of one embedding.
    pub fn predict(&self, e: &[f32]) -> usize {
        argmax(&self.probs(e))
    }

    /// One SGD step on weighted examples (cross-entropy): `lr` times the weighted mean
    /// gradient, each parameter's gradient clipped to norm [`GRAD_CLIP`].
    #[expect(clippy::many_single_char_names, reason = "the names of the maths (e, y, h, z, g)")]
    pub fn sgd_step(&mut self, batch: &[(&[f32], usize, f32)], lr: f32) {
        let (d, hn) = (self.dim, self.hidden);
        let mut gw = vec![0.0; CLASSES * d];
        let mut gb = [0.0; CLASSES];
        let mut gu = vec![0.0; hn * d];
        let mut gc = vec![0.0; hn];
        let mut gv = vec![0.0; CLASSES * hn];
        let mut h = vec![0.0; hn];
        let mut z = [0.0; CLASSES];
        let total: f32 = batch.iter().map(|x| x.2).sum();
        if total <= 0.0 {
            return;
        }
        for &(e, y, wt) in batch {
            self.forward(e, &mut h, &mut z);
            let p = softmax(&z, self.temperature);
            let mut g = [0.0; CLASSES];
            for k in 0..CLASSES {
                g[k] = (p[k] - f32::from(u8::from(k == y))) / self.temperature * wt / total;
                gb[k] += g[k];
                for i in 0..d {
                    gw[k * d + i] += g[k] * e[i];
                }
                for j in 0..hn {
                    gv[k * hn + j] += g[k] * h[j];
                }
            }
            for j in 0..hn {
                if h[j] <= 0.0 {
                    continue;
                }
                let gh: f32 = (0..CLASSES).map(|k| g[k] * self.v[k * hn + j]).sum();
                gc[j] += gh;
                for i in 0..d {
                    gu[j * d + i] += gh * e[i];
                }
            }
        }
        for (p, g) in [
            (&mut self.w, &mut gw[..]),
            (&mut self.b, &mut gb[..]),
            (&mut self.u, &mut gu[..]),
            (&mut self.c, &mut gc[..]),
            (&mut self.v, &mut gv[..]),
        ] {
            let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
            let scale = if norm > GRAD_CLIP { GRAD_CLIP / norm } else { 1.0 };
            for (pi, gi) in p.iter_mut().zip(g.iter()) {
                *pi -= lr * scale * gi;
            }
        }
    }

    /// L2 distance between two heads' parameters (same shapes).
    pub fn distance(&self, other: &Head) -> f32 {
        self.params().zip(other.params()).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt()
    }

    /// L2 norm of the trained layer (the scale the move cap is relative to).
    pub fn norm(&self) -> f32 {
        self.w.iter().chain(&self.b).map(|x| x * x).sum::<f32>().sqrt()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Softmax of `z / t`.
#[expect(clippy::many_single_char_names, reason = "the names of the maths")]
pub fn softmax(z: &[f32; CLASSES], t: f32) -> [f32; CLASSES] {
    let m = z.iter().copied().fold(f32::MIN, f32::max);
    let mut p = z.map(|v| ((v - m) / t).exp());
    let s: f32 = p.iter().sum();
    for v in &mut p {
        *v /= s;
    }
    p
}

/// Index of the largest value (the first on ties).
pub fn argmax(p: &[f32]) -> usize {
    p.iter().copied().enumerate().fold((0, f32::MIN), |acc, (i, v)| if v > acc.1 { (i, v) } else { acc }).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        let w = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, -1.0]];
        Head::from_trained(&w, &[0.0, 0.1, 0.0], 1.0, 4, 7).expect("head")
    }

    #[test]
    fn fresh_head_is_the_trained_softmax_layer() {
        let h = head();
        let e = [0.5, -0.25];
        let z = [0.5, -0.25 + 0.1, -0.25];
        let want = softmax(&z, 1.0);
        let got = h.probs(&e);
        for k in 0..CLASSES {
            assert!((got[k] - want[k]).abs() < 1e-6);
        }
    }

    #[test]
    fn sgd_moves_towards_the_label_and_bad_shapes_are_refused() {
        let mut h = head();
        let e = [1.0, 0.2];
        let before = h.probs(&e)[2];
        for _ in 0..50 {
            h.sgd_step(&[(&e[..], 2, 1.0)], 0.2);
        }
        assert!(h.probs(&e)[2] > before + 0.5, "{} -> {}", before, h.probs(&e)[2]);
        assert!(h.distance(&head()) > 0.0);
        h.check().expect("shapes");
        h.v.pop();
        assert!(h.check().is_err());
        // A forged head: finite, but weights that overflow the logits.
        let mut forged = head();
        forged.w[0] = 3.4e38;
        assert!(forged.check().is_err());
        assert!(Head::from_trained(&[vec![3.4e38, 0.0], vec![0.0; 2], vec![0.0; 2]], &[0.0; 3], 1.0, 2, 0).is_err());
        assert!(Head::from_trained(&[vec![1.0]], &[0.0], 1.0, 2, 0).is_err());
    }
}
