"""Novelty: how unlike the training flows a flow is, measured where the model decides (numpy
only, so CI's unit tests run without torch).

The graph's `embedding` output (the LSTM's last hidden state, the softmax layer's input) of
the flows the model was fitted on gives one mean per class and one shared covariance
(within-class scatter, shrunk towards a multiple of the identity so that a 64-wide
covariance from a few thousand flows inverts stably). A flow's novelty is its smallest
squared Mahalanobis distance to a class mean (Lee et al., 2018, "A simple unified framework
for detecting out-of-distribution samples"). `max_distance` is the `quantile` (default
0.99) of the distances of labelled flows the model was *not* fitted on (the calibration
slice): about 1 % of flows like the training data lie beyond it.

What the sensor does with it (`unknown_scope` "benign" rules, `decision.py`): a flow whose
verdict would be benign and whose distance is above `max_distance` is `unknown`: a flow unlike
anything the model was trained on is never passed as benign. An alert stays an alert."""

import numpy as np

QUANTILE = 0.99
SHRINK = 0.1
MIN_CLASS_FLOWS = 10


def fit(emb, y, shrink=SHRINK):
    """Class means (classes with at least `MIN_CLASS_FLOWS` flows) and the precision matrix
    of the shrunk shared within-class covariance of embeddings `emb` with labels `y`."""
    emb = np.asarray(emb, dtype=np.float64)
    classes = [c for c in np.unique(y) if (y == c).sum() >= MIN_CLASS_FLOWS]
    if not classes:
        raise ValueError(f"no class has {MIN_CLASS_FLOWS} flows to fit novelty on")
    means = np.stack([emb[y == c].mean(0) for c in classes])
    centred = np.concatenate([emb[y == c] - means[i] for i, c in enumerate(classes)])
    cov = centred.T @ centred / max(len(centred) - len(classes), 1)
    dim = cov.shape[0]
    cov = (1.0 - shrink) * cov + shrink * (np.trace(cov) / dim) * np.eye(dim)
    return means, np.linalg.inv(cov)


def distance(emb, means, precision):
    """Smallest squared Mahalanobis distance of each row of `emb` to a class mean."""
    emb = np.asarray(emb, dtype=np.float64)
    out = np.full(len(emb), np.inf)
    for m in np.asarray(means, dtype=np.float64):
        x = emb - m
        out = np.minimum(out, np.einsum("ij,jk,ik->i", x, np.asarray(precision, dtype=np.float64), x))
    return out


def block(fit_emb, fit_y, held_emb, quantile=QUANTILE, shrink=SHRINK):
    """The metadata's `ood` block: fitted on (`fit_emb`, `fit_y`), threshold from
    `held_emb` (flows the model was not fitted on)."""
    means, precision = fit(fit_emb, fit_y, shrink)
    held = distance(held_emb, means, precision)
    return {"class_means": np.round(means, 6).tolist(), "precision": np.round(precision, 6).tolist(),
            "max_distance": round(float(np.quantile(held, quantile)), 4), "quantile": quantile, "shrink": shrink,
            "fitted_flows": int(len(fit_y)), "threshold_flows": int(len(held_emb))}


def novel(meta_ood, emb):
    """True where a flow is beyond the block's `max_distance` (all False without a block)."""
    if not meta_ood or emb is None:
        return np.zeros(0 if emb is None else len(emb), dtype=bool)
    # The rounded precision the sensor reads, not the unrounded one: same verdicts both sides.
    return distance(emb, meta_ood["class_means"], meta_ood["precision"]) > meta_ood["max_distance"]
