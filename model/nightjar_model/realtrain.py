"""`train-real`: the seed's design (NightjarNet, unchanged) trained and validated on the
labelled real corpus (`corpus` + `dataset`), never split by flow.

Splits (every one keeps whole runs, i.e. captures, on one side):
- grouped K-fold cross-validation by run (`cv`): a new capture of known sources/families;
- leave-one-source-out (`loso`): train on the other sources, test on the held-out one;
- leave-one-family-out (`lofo`): every run holding a flow of the family is held out
  (its other flows, e.g. the infected host's Windows background, are reported apart).

Inside every split, the softmax temperature, the `unknown` threshold and the benign offset
are chosen on the *training* side only, by default on out-of-fold logits of all its real
runs (`decision = "oof"`: `inner_folds` models, each fitted without one inner fold of
runs); `decision = "slice"` uses a validation slice of training runs held out of the
fit, as the shipped 2026.12.01-real-2 did. The model that is tested is fitted on the
training side minus a validation slice (by run; its per-pass macro F1 is the learning
curve). The test side chooses nothing. Pooled test predictions therefore use per-split
thresholds, as a deployment would.

Decision rule, as the sensor applies it (`inference/classifier.rs`): probs = softmax of
the graph (logits / T), verdict = argmax, `unknown` when the top probability is below
`unknown_below`. To flag at most `FLAG_TARGET` of the validation slice's benign flows
without touching the sensor, a benign log-prior offset (delta) is added to the calibrated
benign logit and baked into the softmax layer's bias (bias_benign += delta * T): the
exported probabilities are the calibrated ones re-weighted for a higher benign base rate
(real networks are far more benign than the corpus' 28 %). The alternative that needs no
offset (raising `unknown_below` until the flag rate holds) is measured too (`--threshold`).

`unknown_below` is the top-class probability (after temperature and offset) below which
the least confident `UNKNOWN_SHARE` (10 %) of the validation flows lie: on these splits no
threshold reaches the 98 % validation accuracy the generated-traffic model used, so an
accuracy target would make most flows `unknown`.

Training adds Gaussian noise (sd `noise` = 0.5, in standardised units) to the static
features: measured on grouped CV (3 seeds), it lifts pooled argmax macro F1 from 0.51 to
0.64; the exact static values otherwise identify the capture.

Balancing per run (a few captures hold most flows: Nikto 797, ps-empire 652): `cap`
draws at most `cap` flows of each (run, class) per pass, a fresh draw every pass; `weight`
weighs each flow min(1, cap / n); `none` uses every flow once per pass. The number of
optimiser steps is the same for all. Class weights (inverse class mass after balancing)
are optional."""

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import dataset, export, metrics, train
from .decision import (FLAG_TARGET, SPLITS, UNKNOWN, UNKNOWN_SHARE, choose_thresholds, class_offsets,  # noqa: F401
                       class_recall, deployed, flag_rate, smallest_offset, softmax, apps_of, sensor_verdicts)
from .metrics import VERDICTS, deployed_report, plot_matrix  # noqa: F401 (used as rt.*)
from .net import NightjarNet
from .schema import CLASSES, Preprocessing

REAL_DEFAULTS = dict(train.DEFAULTS, epochs=20, batch=64, balance="cap", cap=40, class_weights=True,
                     weak_weight=1.0, noise=0.5, seq_noise=0.0, body_l2=0.0, seed=1, decision="oof", inner_folds=3)
# `why` values that label a whole capture, not the flow (README, "Real corpus").
WEAK_RULES = ("sandbox_run", "folder", "ndpi_capture", "mercury_capture")
# Per-app benign flag targets of the decision rule (`--flag-target app=share,...`).
FLAG_TARGETS = {"tls": FLAG_TARGET, "http": FLAG_TARGET}
LOFO_FAMILIES = ["trickbot", "beacons/ps-empire", "majikpos", "hancitor", "cobalt_strike", "rigek", "grandcrab",
                 "sodinokibi", "emotet_banker", "beacons/blacknet", "vbs_loader", "nikto", "bots_scanners", "drupal"]


# ---------------------------------------------------------------------------------------
# Groups and splits


def group_keys(d):
    """(run, class) of every flow: the unit capped or weighted."""
    return np.asarray([f"{r}\x00{c}" for r, c in zip(d["run"], d["y"])])


def run_folds(d, idx, k=5, seed=1):
    """Runs of `idx` dealt to `k` folds: largest first, each to the fold that holds the
    fewest flows of the run's main class (ties: fewest flows), so every fold holds every
    class and no run is split."""
    rng = np.random.default_rng(seed)
    counts = defaultdict(lambda: np.zeros(3, dtype=np.int64))
    for i in idx:
        counts[d["run"][i]][d["y"][i]] += 1
    runs = list(counts)
    rng.shuffle(runs)
    runs.sort(key=lambda r: -counts[r].sum())
    load = np.zeros((k, 3), dtype=np.int64)
    fold_of = {}
    for r in runs:
        c = int(np.argmax(counts[r]))
        f = min(range(k), key=lambda f: (load[f, c], load[f].sum()))
        fold_of[r] = f
        load[f] += counts[r]
    return np.asarray([fold_of[d["run"][i]] for i in idx])


def validation_runs(d, idx, share=0.2, seed=1):
    """Splits `idx` by run into (fit, validation): runs drawn at random until the
    validation slice holds `share` of every class; a run is skipped when it would take a
    class above 1.5 times its share (so Nikto's capture is not a whole class's validation)
    or when most of its flows are of classes the slice already has enough of."""
    rng = np.random.default_rng(seed)
    counts = defaultdict(lambda: np.zeros(3, dtype=np.int64))
    for i in idx:
        counts[d["run"][i]][d["y"][i]] += 1
    total = sum(counts.values())
    want = share * total
    runs = list(counts)
    rng.shuffle(runs)
    got = np.zeros(3)
    val = set()
    for r in runs:
        if np.all(got >= want):
            break
        c = counts[r]
        needed = (got < want) & (c > 0)
        if c[needed].sum() < 0.5 * c.sum() or np.any((got + c > 1.5 * want) & (c > 0)):
            continue
        val.add(r)
        got += c
    is_val = np.asarray([d["run"][i] in val for i in idx])
    return idx[~is_val], idx[is_val]


# ---------------------------------------------------------------------------------------
# Fit


def capped(groups, idx, cap, rng):
    """At most `cap` flows of each group among `idx` (a fresh draw each call)."""
    by = defaultdict(list)
    for i in idx:
        by[groups[i]].append(i)
    out = []
    for g in sorted(by):
        members = np.asarray(by[g])
        out.append(members if len(members) <= cap else rng.choice(members, cap, replace=False))
    return np.sort(np.concatenate(out))


def flow_weights(d, groups, idx, cfg):
    """Per-flow loss weights (position in `idx`): run weighting and weak-label weighting."""
    w = np.ones(len(idx), dtype=np.float32)
    if cfg["balance"] == "weight":
        n = Counter(groups[idx])
        w *= np.asarray([min(1.0, cfg["cap"] / n[groups[i]]) for i in idx], dtype=np.float32)
    if cfg["weak_weight"] != 1.0 and "why" in d:
        w *= np.where(np.isin(d["why"][idx], WEAK_RULES), cfg["weak_weight"], 1.0).astype(np.float32)
    return w


def fit(d, train_idx, cfg, val=None, desc="fit"):
    """NightjarNet on `train_idx` with run balancing; returns the net, the preprocessing and
    the per-pass history (validation macro F1 when `val` is given)."""
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    groups = group_keys(d)
    train_idx = np.asarray(train_idx)
    # Preprocessing (scales, URL vocabulary, IDF) on the balanced view too: otherwise
    # Nikto's 797 requests choose most of the vocabulary.
    pre_idx = train_idx if cfg["balance"] == "none" else capped(groups, train_idx, cfg["cap"], np.random.default_rng(0))
    pre = Preprocessing.fit(d["static"][pre_idx], d["seq"][pre_idx], [d["tokens"][i] for i in pre_idx],
                            vocab_size=cfg["vocab"])
    use_chars = cfg.get("chars", 0) > 0
    x = train.tensors(pre, d, train_idx, chars=use_chars)
    y = torch.from_numpy(d["y"][train_idx])
    pos = {int(i): p for p, i in enumerate(train_idx)}
    w_flow = torch.from_numpy(flow_weights(d, groups, train_idx, cfg))
    net = NightjarNet(d["static"].shape[1], d["seq"].shape[2], len(pre.vocab), dropout=cfg["dropout"],
                      chars=cfg.get("chars", 0), **cfg.get("net", {}))
    head = set(id(p) for p in net.head.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in net.parameters() if id(p) not in head], "weight_decay": cfg.get("body_l2", 0.0)},
                             {"params": list(net.head.parameters()), "weight_decay": cfg["head_l2"]}], lr=cfg["lr"])
    # Class mass as the optimiser will see it.
    if cfg["balance"] == "cap":
        n = Counter(groups[train_idx])
        mass = np.zeros(3)
        for g, c in n.items():
            mass[int(g.split("\x00")[1])] += min(c, cfg["cap"])
    else:
        mass = np.bincount(d["y"][train_idx], weights=w_flow.numpy(), minlength=3)
    cw = torch.from_numpy((mass.sum() / (3 * np.maximum(mass, 1e-6))).astype(np.float32)) if cfg["class_weights"] else torch.ones(3)
    ce = nn.CrossEntropyLoss(weight=cw, reduction="none")
    per_pass = (len(train_idx) + cfg["batch"] - 1) // cfg["batch"]
    steps = cfg["epochs"] * per_pass
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    history = {"train loss": [], "validation macro F1": []}
    xv = train.tensors(pre, d, val, chars=use_chars) if val is not None else None

    def batches():
        while True:
            if cfg["balance"] == "cap":
                pick = capped(groups, train_idx, cfg["cap"], rng)
                order = rng.permutation(np.asarray([pos[int(i)] for i in pick]))
            else:
                order = rng.permutation(len(train_idx))
            for i in range(0, len(order), cfg["batch"]):
                yield torch.from_numpy(order[i:i + cfg["batch"]])

    gen = batches()
    with tqdm(total=steps, desc=desc, unit=" batches", leave=False) as bar:
        for _ in range(cfg["epochs"]):
            net.train()
            total, seen = 0.0, 0
            for _ in range(per_pass):
                b = next(gen)
                opt.zero_grad()
                xs = x[0][b]
                if cfg.get("noise", 0.0):
                    xs = xs + cfg["noise"] * torch.randn_like(xs)
                xq = x[1][b]
                if cfg.get("seq_noise", 0.0):
                    xq = xq + cfg["seq_noise"] * torch.randn_like(xq)
                per = ce(net(xs, xq, x[2][b], *(t[b] for t in x[3:])), y[b]) * w_flow[b]
                loss = per.sum() / (cw[y[b]] * w_flow[b]).sum()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(b)
                seen += len(b)
                bar.update(1)
            history["train loss"].append(round(total / seen, 5))
            if xv is not None:
                pred = train.predict(net, xv).argmax(1).numpy()
                history["validation macro F1"].append(metrics.report(d["y"][val], pred)["macro"]["f1"])
    return net, pre, history


# ---------------------------------------------------------------------------------------
# Calibration and thresholds


from .decision import APPS  # noqa: E402,F401 (used as rt.APPS)


def choose_decision(logits, y, app, mode="offset", targets=None, T=None):
    """One temperature for the graph (all validation flows), then the benign offset and
    `unknown_below` per app (TLS, HTTP) on that app's validation flows: real networks
    differ per app in base rate and in how benign traffic looks, and the sensor applies
    the rule of each flow's app (`decision` in the metadata). An app with fewer than 20
    validation flows takes the rule chosen on all of them. `targets`: the benign flag
    target per app (default `FLAG_TARGETS`). `T`: a temperature already fixed (a graph that
    bakes it in), else fitted here."""
    T = train.calibrate(torch.from_numpy(logits), y) if T is None else T
    both = choose_thresholds(logits, y, mode, T=T)
    apps = {}
    for a, name in enumerate(APPS):
        m = app == a
        target = (targets or FLAG_TARGETS).get(name, FLAG_TARGET)
        apps[name] = (choose_thresholds(logits[m], y[m], mode, target=target, T=T) | {"flag_target": target}
                      if m.sum() >= 20 and (y[m] == 0).any() else dict(both))
    return {"temperature": round(float(T), 4), "all": both, "apps": apps}


def rule_offsets(rule):
    """[benign, attack, malware] log offsets of one chosen rule."""
    return np.array([rule["benign_offset"], 0.0, rule.get("malware_offset", 0.0)])


def per_flow_rule(decision, apps):
    """Per-flow (T, class log offsets [n, 3], unknown_below, unknown only for benign verdicts)
    for flows of `apps` under `decision`."""
    n = len(apps)
    T = np.full(n, decision["temperature"])
    delta = np.tile(rule_offsets(decision["all"]), (n, 1))
    u = np.full(n, decision["all"]["unknown_below"])
    scope = np.full(n, decision["all"].get("unknown_scope", "all") == "benign")
    for a, name in enumerate(APPS):
        m = apps == a
        delta[m] = rule_offsets(decision["apps"][name])
        u[m] = decision["apps"][name]["unknown_below"]
        scope[m] = decision["apps"][name].get("unknown_scope", "all") == "benign"
    return T, delta, u, scope


def ece(probs, y, bins=15):
    """Expected calibration error of the top-class probability (equal-width bins)."""
    conf = probs.max(1)
    right = probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs(right[m].mean() - conf[m].mean())
    return round(float(e), 4)


def reliability(probs, y, bins=10):
    conf = probs.max(1)
    right = probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            rows.append((float(conf[m].mean()), float(right[m].mean()), int(m.sum())))
    return rows


# ---------------------------------------------------------------------------------------
# Reports


def run_balance_weights(d, idx):
    n = Counter(d["run"][idx])
    return np.asarray([1.0 / n[d["run"][i]] for i in idx])


def evaluate(d, idx, logits, T, delta, u, scope=None):
    """Everything about one set of test predictions. `T`, `delta`, `u`, `scope` (True:
    `unknown` only for benign verdicts; default all False): per flow (each flow's split
    chose them on its own validation slice)."""
    y = d["y"][idx]
    raw = softmax(logits)
    z = logits / T[:, None]
    cal = softmax(z)
    v = np.empty(len(idx), dtype=np.int64)
    dep = np.empty_like(cal)
    delta = np.asarray(delta, dtype=np.float64)
    scope = np.zeros(len(idx), dtype=bool) if scope is None else np.asarray(scope, dtype=bool)
    for key in set(zip(T, map(tuple, delta), u, scope)):
        m = (T == key[0]) & (delta == np.asarray(key[1])).all(1) & (u == key[2]) & (scope == key[3])
        v[m], dep[m] = deployed(z[m], np.asarray(key[1]), key[2], "benign" if key[3] else "all")
    rep = {"flows": int(len(idx)), "runs": int(len(set(d["run"][idx]))),
           "argmax": metrics.report(y, cal.argmax(1)),
           "deployed": deployed_report(y, v),
           "deployed_run_balanced": deployed_report(y, v, run_balance_weights(d, idx)),
           "ece": {"before_temperature": ece(raw, y), "after_temperature": ece(cal, y),
                   "deployed_with_benign_offset": ece(dep, y)}}
    apps = app_of(d)[idx]
    rep["per_app"] = {}
    for a, name in enumerate(APPS):
        m = apps == a
        if not m.any():
            continue
        r = deployed_report(y[m], v[m])
        row = {"flows": int(m.sum()), "per_class": r["per_class"], "macro_f1": r["macro_f1"],
               "benign_flag_rate": r["benign_flag_rate"], "non_benign_alerted": r["non_benign_alerted"]}
        # The measure: each family counts once, whatever its flow count.
        for c in (1, 2):
            fams = [f for f in set(d["family"][idx][m & (y == c)]) if (m & (y == c) & (d["family"][idx] == f)).sum() >= 5]
            if fams:
                caught, named = [], []
                for f in fams:
                    mf = m & (y == c) & (d["family"][idx] == f)
                    caught.append(float(np.isin(v[mf], (1, 2)).mean()))
                    named.append(float((v[mf] == c).mean()))
                row[f"{CLASSES[c]}_families"] = {"families": len(fams), "mean_caught": round(float(np.mean(caught)), 4),
                                                 "mean_named": round(float(np.mean(named)), 4)}
        rep["per_app"][name] = row
    rep["argmax"].pop("confusion", None)
    rep["argmax_confusion"] = metrics.report(y, cal.argmax(1))["confusion"]["matrix"]
    for key, name in (("source", "per_source"), ("family", "per_family"), ("why", "per_rule")):
        if key not in d:
            continue
        out = {}
        vals = d[key][idx]
        for s in sorted(set(vals)):
            m = vals == s
            if key == "family" and m.sum() < 15:
                continue
            cls = int(np.bincount(y[m]).argmax())
            out[s] = {"flows": int(m.sum()), "class": CLASSES[cls],
                      "recall_deployed": round(float((v[m] == y[m]).mean()), 4),
                      "recall_argmax": round(float((cal[m].argmax(1) == y[m]).mean()), 4),
                      "flagged": round(float(np.isin(v[m], (1, 2)).mean()), 4),
                      "unknown": round(float((v[m] == UNKNOWN).mean()), 4)}
            if key == "source":
                out[s]["deployed"] = {k: deployed_report(y[m], v[m])[k] for k in ("per_class", "benign_flag_rate")}
        rep[name] = out
    return rep, v, cal, dep, raw


def headline(rep):
    """The numbers of the summary tables."""
    dep = rep["deployed"]
    return {"flows": rep["flows"], "runs": rep["runs"],
            "argmax_macro_f1": rep["argmax"]["macro"]["f1"],
            "deployed": {c: {k: dep["per_class"][c][k] for k in ("precision", "recall", "f1", "support")} for c in CLASSES},
            "deployed_macro_f1": dep["macro_f1"], "benign_flag_rate": dep["benign_flag_rate"],
            "non_benign_alerted": dep["non_benign_alerted"], "unknown_share": dep["unknown_share"],
            "run_balanced_macro_f1": rep["deployed_run_balanced"]["macro_f1"],
            "run_balanced_benign_flag_rate": rep["deployed_run_balanced"]["benign_flag_rate"], "ece": rep["ece"],
            "per_app": rep.get("per_app", {})}


def plot_reliability(curves, path):
    """`curves`: {panel title: {label: (probs, y)}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.2), squeeze=False)
    for ax, (title, series) in zip(axes[0], curves.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for label, (p, y) in series.items():
            rows = reliability(p, y)
            ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label=f"{label} (ECE {ece(p, y):.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("top-class probability")
        ax.set_ylabel("accuracy")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def operating_points(z, y, u, offsets, scope="all"):
    """(benign flagged, non-benign alerted) of calibrated logits `z` for each benign
    offset, `unknown` below the per-flow `u` (within the per-flow `scope`)."""
    pts = []
    for delta in offsets:
        v, _ = deployed(z, delta, u, scope)
        alert = np.isin(v, (1, 2))
        pts.append((float(alert[y == 0].mean()) if (y == 0).any() else 0.0,
                    float(alert[y > 0].mean()) if (y > 0).any() else 0.0))
    return pts


def plot_operating(d, pooled_arrays, path):
    """Per app and protocol, the trade-off an operator moves along with the benign offset:
    benign flows flagged against non-benign flows alerted on the pooled test flows
    (each split's own temperature and `unknown_below`), with the deployed point marked.
    Returns the points (offsets 0, 0.5, ... 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offsets = np.arange(0.0, 8.01, 0.25)
    fig, axes = plt.subplots(1, len(APPS), figsize=(5.2 * len(APPS), 4.4), squeeze=False)
    out = {}
    for ax, (a, name) in zip(axes[0], enumerate(APPS)):
        for title, p in pooled_arrays.items():
            m = app_of(d)[p["idx"]] == a
            if not m.any():
                continue
            y = d["y"][p["idx"]][m]
            # Each split's malware shift stays; only the benign offset moves.
            z = p["logits"][m] / p["T"][m][:, None] + p["delta"][m] * [0.0, 0.0, 1.0]
            pts = operating_points(z, y, p["u"][m], offsets, p["scope"][m])
            line = ax.plot([100 * x for x, _ in pts], [100 * r for _, r in pts], marker=".", label=title)[0]
            v = p["verdict"][m]
            dep = (100 * float(np.isin(v[y == 0], (1, 2)).mean()), 100 * float(np.isin(v[y > 0], (1, 2)).mean()))
            ax.plot(*dep, marker="*", ms=14, color=line.get_color(), ls="none")
            out.setdefault(name, {})[title] = {"deployed": [round(x / 100, 4) for x in dep],
                                               "by_offset": {f"{o:.2f}": [round(x, 4), round(r, 4)]
                                                             for o, (x, r) in zip(offsets[::2], pts[::2])}}
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("benign flows flagged (%)")
        ax.set_ylabel("attack + malware flows alerted (%)")
        ax.set_title(f"{name.upper()}: moving the benign offset (star: deployed)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------
# Validation protocols


MODES = ("classes", "offset", "flag", "flag-classes", "unknown", "none")


def run_split(d, train_idx, test_idx, cfg, desc):
    """Fit on `train_idx` minus a validation slice (by run); raw logits of `test_idx`, and
    the logits the decision rule is chosen on:
    - `decision = "slice"`: the validation slice's, from the same model;
    - `decision = "oof"` (default): out-of-fold logits of every real training flow, from
      `inner_folds` models fitted on the other inner folds (grouped by run). A slice of
      15-20 % holds a few runs per app (69 benign HTTP requests of three captures in the
      last shipped model's slice), so a 1 % target is set by one or two captures; the
      out-of-fold set holds all of them, at the cost of `inner_folds` more fits."""
    fit_idx, val_idx = validation_runs(d, train_idx, seed=cfg["seed"])
    assert not set(d["run"][fit_idx]) & set(d["run"][test_idx])
    assert not set(d["run"][val_idx]) & set(d["run"][test_idx])
    aug = augmented(d) if cfg.get("augment", True) else np.zeros(0, dtype=np.int64)
    fit_idx = np.sort(np.concatenate([fit_idx, aug]))
    net, pre, hist = fit(d, fit_idx, cfg, val=val_idx, desc=desc)
    chars = cfg.get("chars", 0) > 0
    test_logits = train.predict(net, train.tensors(pre, d, test_idx, chars)).numpy().astype(np.float64)
    if cfg.get("decision", "slice") == "oof":
        dec_idx, dec_logits = out_of_fold(d, train_idx, cfg, desc)
    else:
        dec_idx = val_idx
        dec_logits = train.predict(net, train.tensors(pre, d, val_idx, chars)).numpy().astype(np.float64)
    return {"test_logits": test_logits, "val_logits": dec_logits, "val_y": d["y"][dec_idx],
            "val_app": app_of(d)[dec_idx], "history": hist, "decision_set": cfg.get("decision", "slice"),
            "fit_flows": int(len(fit_idx)), "validation_runs": int(len(set(d["run"][dec_idx])))}


def out_of_fold(d, idx, cfg, desc, k=None):
    """Out-of-fold logits of the real flows of `idx`: `k` folds by run (`run_folds`), each
    predicted by a model fitted on the other folds (plus the augmentation)."""
    k = k or cfg.get("inner_folds", 3)
    idx = np.asarray(idx)
    idx = idx[d["source"][idx] != AUG_SOURCE]
    fold = run_folds(d, idx, k, cfg["seed"] + 7)
    aug = augmented(d) if cfg.get("augment", True) else np.zeros(0, dtype=np.int64)
    chars = cfg.get("chars", 0) > 0
    parts, logits = [], []
    for f in range(k):
        tr, te = idx[fold != f], idx[fold == f]
        net, pre, _ = fit(d, np.sort(np.concatenate([tr, aug])), cfg, desc=f"{desc} inner {f + 1}/{k}")
        logits.append(train.predict(net, train.tensors(pre, d, te, chars)).numpy().astype(np.float64))
        parts.append(te)
    order = np.concatenate(parts)
    return order, np.concatenate(logits)


def split_rules(d, fits, mode, targets):
    """For each split (label, test_idx, r with `val_logits`, `val_y`, `val_app`): its rule
    under `mode`, chosen on its own decision set, and that rule per test flow
    (`per_flow_rule`): [(label, thresholds, (T, delta, u, scope))]."""
    out = []
    for label, te, r in fits:
        thr = choose_decision(r["val_logits"], r["val_y"], r["val_app"], mode, targets)
        out.append((label, thr, per_flow_rule(thr, app_of(d)[te])))
    return out


def pooled_rule(rules):
    """The per-flow rule arrays of `split_rules`, concatenated in split order."""
    return [np.concatenate(a) for a in zip(*(rule for *_, rule in rules))]


def pooled(d, splits, cfg, name, modes=MODES):
    """Runs every (label, train_idx, test_idx) split; for every threshold mode (thresholds
    chosen on that split's validation slice), pools the test predictions. The first mode
    is the one reported in full; the others as headlines."""
    out = {"by_mode": {}}
    fits = []
    for label, tr, te in splits:
        t0 = time.time()
        r = run_split(d, tr, te, cfg, f"{name} {label}")
        r["seconds"] = round(time.time() - t0, 1)
        fits.append((label, te, r))
    idx = np.concatenate([te for _, te, _ in fits])
    logits = np.concatenate([r["test_logits"] for *_, r in fits])
    for mode in modes:
        rules = split_rules(d, fits, mode, cfg.get("flag_targets"))
        per = {}
        if mode == modes[0]:
            for (label, te, r), (_, thr, rule) in zip(fits, rules):
                thr["fit_flows"], thr["validation_runs"] = r["fit_flows"], r["validation_runs"]
                rep, *_ = evaluate(d, te, r["test_logits"], *rule)
                per[label] = {"thresholds": thr, "test": headline(rep), "seconds": r["seconds"],
                              "history": r["history"], "test_per_family": rep.get("per_family", {})}
                tqdm.write(f"{name} {label}: deployed macro F1 {rep['deployed']['macro_f1']}, benign flagged "
                           f"{rep['deployed']['benign_flag_rate']} (validation tls "
                           f"{thr['apps']['tls']['validation_flag_rate']}, http {thr['apps']['http']['validation_flag_rate']}), "
                           f"{r['seconds']} s")
        arr = pooled_rule(rules)
        rep, v, cal, dep, raw = evaluate(d, idx, logits, *arr)
        if mode == modes[0]:
            out["splits"], out["pooled"] = per, rep
            out["pooled_arrays"] = {"idx": idx, "logits": logits, "T": arr[0], "delta": arr[1], "u": arr[2],
                                    "scope": arr[3], "verdict": v, "cal": cal, "dep": dep, "raw": raw}
            # What each split chose its rule on, so a rule can be re-chosen without refitting.
            out["decision_arrays"] = {label: {"test_idx": te, "val_logits": r["val_logits"], "val_y": r["val_y"],
                                              "val_app": r["val_app"]} for label, te, r in fits}
        out["by_mode"][mode] = headline(rep)
    slices, start = {}, 0
    for label, te, _ in fits:
        slices[label] = slice(start, start + len(te))
        start += len(te)
    out["slices"] = slices
    return out


AUG_SOURCE = dataset.AUG_SOURCE


def real(d):
    """Indices of the real flows (splits, validation and every reported figure use only these)."""
    return np.where(d["source"] != AUG_SOURCE)[0]


def augmented(d):
    """Indices of generated augmentation flows (`--augment`): always on the fitting side."""
    return np.where(d["source"] == AUG_SOURCE)[0]


def app_of(d):
    return apps_of(d["static"])


def cv_splits(d, k=5, seed=1):
    idx = real(d)
    fold = run_folds(d, idx, k, seed)
    return [(f"fold {f + 1}/{k}", idx[fold != f], idx[fold == f]) for f in range(k)]


def loso_splits(d):
    idx = real(d)
    src = d["source"][idx]
    return [(s, idx[src != s], idx[src == s]) for s in sorted(set(src))]


def lofo_splits(d, families):
    """Held out: every run holding a flow of the family (the whole runs)."""
    out = []
    idx = real(d)
    for fam in families:
        runs = set(d["run"][idx][d["family"][idx] == fam])
        if not runs:
            continue
        held = np.isin(d["run"][idx], list(runs))
        out.append((fam, idx[~held], idx[held]))
    return out


def lofo_family_view(d, res, families):
    """Per held-out family: its own flows' recall, and the other flows of its runs."""
    p = res["pooled_arrays"]
    out = {}
    for fam in families:
        label = fam
        if label not in res["splits"]:
            continue
        sl = res["slices"][label]
        idx, v, cal = p["idx"][sl], p["verdict"][sl], p["cal"][sl]
        y = d["y"][idx]
        own = d["family"][idx] == fam
        rest = ~own
        cls = int(y[own][0])
        row = {"class": CLASSES[cls], "flows": int(own.sum()), "runs": int(len(set(d["run"][idx]))),
               "recall_deployed": round(float((v[own] == cls).mean()), 4),
               "recall_argmax": round(float((cal[own].argmax(1) == cls).mean()), 4),
               "alerted_any_non_benign": round(float(np.isin(v[own], (1, 2)).mean()), 4),
               "unknown": round(float((v[own] == UNKNOWN).mean()), 4),
               "predicted": {VERDICTS[k]: int((v[own] == k).sum()) for k in range(4)}}
        b = rest & (y == 0)
        if b.any():
            row["same_runs_benign"] = {"flows": int(b.sum()), "flagged": round(float(np.isin(v[b], (1, 2)).mean()), 4)}
        out[fam] = row
    return out


def strip(res):
    return {k: v for k, v in res.items() if k not in ("pooled_arrays", "slices", "decision_arrays")}


def save_arrays(path, protocols, final=None):
    """Every protocol's pooled test logits and the logits each split chose its rule on (and
    the final model's rule set), so a decision rule can be re-chosen and re-measured without
    fitting again (`python -m nightjar_model rechoose`)."""
    out = {}
    for name, res in protocols.items():
        for k in ("idx", "logits"):
            out[f"{name}/pooled/{k}"] = res["pooled_arrays"][k]
        for label, a in res.get("decision_arrays", {}).items():
            for k, v in a.items():
                out[f"{name}/split/{label}/{k}"] = v
    for k, v in (final or {}).items():
        out[f"final/{k}"] = v
    np.savez_compressed(path, **out)


# ---------------------------------------------------------------------------------------
# Scoring exported models with ONNX Runtime


def score_onnx(meta_path: Path, static, seq, tokens, variant="float", chars=None):
    """The sensor's preprocessing (from the metadata) and ONNX Runtime: the graph's
    probabilities (temperature included), then the sensor's decision rule; returns the
    decided probabilities, verdicts and the metadata."""
    meta = json.loads(meta_path.read_text())
    pre = Preprocessing.from_json(meta["preprocessing"])
    width = meta.get("chars", 0)
    probs, emb = export.run_ort(meta_path.parent / meta["files"][variant]["path"],
                                export.feeds(pre, static, seq, tokens, chars=chars if width else None),
                                ("probs", "embedding"))
    v, q = sensor_verdicts(meta, probs, apps_of(static), emb)
    return q, v, meta
