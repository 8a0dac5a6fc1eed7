"""The decision rule: how calibrated logits become the sensor's verdicts, and how its
thresholds are chosen on validation logits (numpy only, so the unit tests run without
torch). The sensor applies the same rule (`inference/classifier.rs`): probabilities =
softmax(logits / T + class log offsets), the top class, `unknown` below `unknown_below`,
for every flow (`unknown_scope` "all", the rule up to 2026.12.02-real-5) or only for flows
whose top class is benign (`unknown_scope` "benign": a weak benign verdict becomes
`unknown`, an alert stays an alert with its low score)."""

import numpy as np

FLAG_TARGET = 0.01
UNKNOWN_SHARE = 0.1
UNKNOWN = 3


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def class_offsets(off):
    """A decision rule's log offsets as [benign, attack, malware]: a scalar is the benign
    offset alone (the rule before per-class offsets)."""
    off = np.asarray(off, dtype=np.float64)
    return np.array([float(off), 0.0, 0.0]) if off.ndim == 0 else off


def deployed(z, delta, unknown_below, scope="all"):
    """Verdicts as the sensor gives them from calibrated logits `z` (logits / T) with the
    class log offsets `delta` ([benign, attack, malware], or the benign offset alone)
    added: argmax, `unknown` (3) below the threshold (`scope` "all": any flow; "benign":
    only a flow whose top class is benign; a per-flow boolean array: True = "benign");
    and the probabilities."""
    p = softmax(z + class_offsets(delta))
    v = p.argmax(1)
    low = p.max(1) < unknown_below
    benign_only = np.asarray(scope == "benign") if isinstance(scope, str) else np.asarray(scope, dtype=bool)
    v[low & (~benign_only | (v == 0))] = UNKNOWN
    return v, p


def flag_rate(z, y, delta, u, scope="all"):
    b = y == 0
    if not b.any():
        return 0.0
    v, _ = deployed(z[b], delta, u, scope)
    return float(np.isin(v, (1, 2)).mean())


def smallest_offset(z, y, u, target, split=0.0, scope="all"):
    """The smallest benign offset that flags at most `target` of the benign flows, with
    malware shifted by `split` against attack (offsets [delta, 0, split])."""
    for delta in np.arange(0.0, 12.01, 0.05):
        if flag_rate(z, y, [delta, 0.0, split], u, scope) <= target:
            return float(delta)
    return 12.0


# Malware-against-attack shifts the `classes` rule tries.
SPLITS = np.arange(-4.0, 4.01, 0.5)
MIN_CLASS_FLOWS = 5


def class_recall(z, y, off, u, scope="all"):
    """Mean over attack and malware (those with at least `MIN_CLASS_FLOWS` flows) of the
    share of their flows given their own class: what the `classes` rule maximises."""
    v, _ = deployed(z, off, u, scope)
    r = [float((v[y == c] == c).mean()) for c in (1, 2) if (y == c).sum() >= MIN_CLASS_FLOWS]
    return float(np.mean(r)) if r else 0.0


def benign_unknown_below(z, y, off, budget):
    """The largest `unknown_below` (scope "benign") under which at most `budget` of the
    benign flows `y == 0` of calibrated logits `z` come out `unknown`."""
    v0, p0 = deployed(z[y == 0], off, 0.0)
    top = np.sort(p0.max(1)[v0 == 0])
    k = int(np.floor(budget * int((y == 0).sum())))
    return float(top[k]) if k < len(top) else 1.0


def choose_thresholds(logits, y, mode="offset", target=FLAG_TARGET, unknown_share=UNKNOWN_SHARE, T=None):
    """On validation logits: temperature T (NLL); then `unknown_below` u = the top-class
    probability below which the least confident `unknown_share` of the validation flows
    lie, and the benign flag target met by
    - `offset`: the smallest benign offset that flags at most `target` of the validation
      benign flows (u taken after a first offset at u = 0, then the offset lowered again
      to the smallest one that still meets the target with that u);
    - `classes`: as `offset`, for each malware-against-attack shift of `SPLITS` (the
      log offsets [delta, 0, split]); the shift whose rule gives attack and malware flows
      their own class most often (`class_recall`) wins. One threshold per class instead
      of one for both: real benign requests that look like attacks (WebDAV, test suites)
      and those that look like malware (updaters' downloads) no longer set one bar for both;
    - `flag`: as `offset`, but `unknown` only where the top class is benign (scope
      "benign"): the offset alone meets the target (an alert is never hidden as
      `unknown`), and u the largest threshold that makes at most `target` of the
      validation benign flows `unknown` (an `unknown` verdict raises a low-severity alert,
      so it shares the flag budget; `unknown_share` is not used);
    - `flag-classes`: `classes` with the scope of `flag`;
    - `unknown`: no offset, u raised until the target holds;
    - `none`: no offset, no target (what the model alone gives)."""
    if T is None:
        import torch

        from . import train

        T = train.calibrate(torch.from_numpy(logits), y)
    z = logits / T
    off = np.zeros(3)

    scope = "benign" if mode in ("flag", "flag-classes") else "all"

    def fitted(split):
        if scope == "benign":
            # `unknown` never removes an alert, so the offset alone meets the target; and
            # since an `unknown` verdict raises a (low-severity) alert too, it gets the same
            # budget: at most `target` of the benign flows.
            o = np.array([smallest_offset(z, y, 0.0, target, split, scope), 0.0, split])
            return o, benign_unknown_below(z, y, o, target)
        o = np.array([smallest_offset(z, y, 0.0, target, split), 0.0, split])
        u = float(np.quantile(deployed(z, o, 0.0)[1].max(1), unknown_share))
        o[0] = smallest_offset(z, y, u, target, split)
        return o, u

    if mode in ("offset", "flag"):
        off, u = fitted(0.0)
    elif mode in ("classes", "flag-classes"):
        best = None
        for split in SPLITS:
            o, u_ = fitted(float(split))
            score = class_recall(z, y, o, u_, scope)
            if best is None or score > best[0] + 1e-9 or (abs(score - best[0]) <= 1e-9 and abs(split) < abs(best[1][2])):
                best = (score, o, u_)
        _, off, u = best
    else:
        u = float(np.quantile(deployed(z, off, 0.0)[1].max(1), unknown_share))
    if mode == "unknown":
        while u < 0.999 and flag_rate(z, y, off, u) > target:
            u += 0.0025
    v, _ = deployed(z, off, u, scope)
    return {"temperature": round(float(T), 4), "unknown_below": round(float(u), 4), "benign_offset": round(float(off[0]), 3),
            "malware_offset": round(float(off[2]), 3), "unknown_scope": scope,
            "validation_flows": int(len(y)), "validation_benign": int((y == 0).sum()),
            "validation_flag_rate": round(flag_rate(z, y, off, u, scope), 4),
            "validation_class_recall": round(class_recall(z, y, off, u, scope), 4),
            "validation_unknown_share": round(float((v == UNKNOWN).mean()), 4)}


APPS = ("tls", "http")


def apps_of(static):
    """0 TLS, 1 HTTP, 2 other, from the static app flags (the sensor does the same)."""
    return np.where(static[:, 0] > 0.5, 0, np.where(static[:, 1] > 0.5, 1, 2))


def sensor_verdicts(meta, probs, apps, emb=None):
    """Verdicts as the sensor gives them from the graph's probabilities: each app's
    `decision` (class log offsets, `unknown_below`, `unknown_scope`), else the top-level
    `unknown_below`; the same rule as `deployed`, on log-probabilities. With the graph's
    embeddings `emb` and an `ood` block in `meta`, a benign verdict on a novel flow
    (`ood.novel`) is `unknown`."""
    z = np.log(np.clip(probs, 1e-30, 1.0))
    v = np.empty(len(probs), dtype=np.int64)
    out = np.empty_like(probs)
    for a in (0, 1, 2):
        m = apps == a
        r = meta.get("decision", {}).get(APPS[a]) if a < len(APPS) else None
        r = r or {"benign_log_offset": 0.0, "unknown_below": meta["unknown_below"]}
        off = [r["benign_log_offset"], 0.0, r.get("malware_log_offset", 0.0)]
        v[m], out[m] = deployed(z[m], off, r["unknown_below"], r.get("unknown_scope", "all"))
    if meta.get("ood") and emb is not None:
        from . import ood

        v[(v == 0) & ood.novel(meta["ood"], emb)] = UNKNOWN
    return v, out
