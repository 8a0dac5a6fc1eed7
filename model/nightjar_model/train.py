"""Grouped cross-validation, the final fit, temperature calibration and the held-out test."""

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import metrics
from .net import NightjarNet
from .schema import CLASSES, Preprocessing, load_schema

DEFAULTS = {"epochs": 8, "batch": 256, "lr": 2e-3, "head_l2": 1e-3, "dropout": 0.2, "class_weights": False,
            "vocab": 512, "seed": 1}


def folds_by_family(family, y, k=5):
    """Each family goes wholly into one fold; families of each class are dealt round-robin
    by size so every fold holds every class. With `partition_hosts` in the generator's
    scenario, each family has its own hosts, so no host is on both sides either."""
    fams = {}
    for f, c in zip(family, y):
        fams.setdefault(f, [c, 0])[1] += 1
    fold_of = {}
    for c in range(len(CLASSES)):
        ranked = sorted((f for f, (cls, _) in fams.items() if cls == c), key=lambda f: -fams[f][1])
        for i, f in enumerate(ranked):
            fold_of[f] = i % k
    return np.asarray([fold_of[f] for f in family])


def tensors(pre: Preprocessing, d, idx, chars=False):
    """The graph's inputs for flows `idx`; with `chars`, the character ids as well."""
    x = (torch.from_numpy(pre.static(d["static"][idx])),
         torch.from_numpy(pre.seq(d["seq"][idx])),
         torch.from_numpy(pre.url([d["tokens"][i] for i in idx])))
    if chars:
        x += (torch.from_numpy(d["chars"][idx].astype(np.int64)),)
    return x


def make(pre, n_static, seq_cols, cfg):
    return NightjarNet(n_static, seq_cols, len(pre.vocab), dropout=cfg["dropout"])


def predict(net, x, batch=1024):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x[0]), batch):
            out.append(net(*(t[i:i + batch] for t in x)))
    return torch.cat(out)


def fit(d, train_idx, cfg, val=None, desc="train"):
    """Trains on `train_idx`; returns the net, its preprocessing and the per-epoch history."""
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    pre = Preprocessing.fit(d["static"][train_idx], d["seq"][train_idx], [d["tokens"][i] for i in train_idx], vocab_size=cfg["vocab"])
    x = tensors(pre, d, train_idx)
    y = torch.from_numpy(d["y"][train_idx])
    net = make(pre, d["static"].shape[1], d["seq"].shape[2], cfg)
    head = set(id(p) for p in net.head.parameters())
    groups = [{"params": [p for p in net.parameters() if id(p) not in head], "weight_decay": 0.0},
              {"params": list(net.head.parameters()), "weight_decay": cfg["head_l2"]}]
    opt = torch.optim.AdamW(groups, lr=cfg["lr"])
    weights = None
    if cfg["class_weights"]:
        counts = np.bincount(d["y"][train_idx], minlength=3).astype(np.float32)
        weights = torch.from_numpy(counts.sum() / (3 * np.maximum(counts, 1)))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    steps = cfg["epochs"] * ((len(train_idx) + cfg["batch"] - 1) // cfg["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    history = {"train loss": [], "validation macro F1": []}
    xv = tensors(pre, d, val) if val is not None else None
    with tqdm(total=steps, desc=desc, unit=" batches") as bar:
        for _ in range(cfg["epochs"]):
            net.train()
            order = rng.permutation(len(train_idx))
            total = 0.0
            for i in range(0, len(order), cfg["batch"]):
                b = torch.from_numpy(order[i:i + cfg["batch"]])
                opt.zero_grad()
                loss = loss_fn(net(x[0][b], x[1][b], x[2][b]), y[b])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                sched.step()
                total += float(loss) * len(b)
                bar.update(1)
            history["train loss"].append(total / len(order))
            if xv is not None:
                pred = predict(net, xv).argmax(1).numpy()
                history["validation macro F1"].append(metrics.report(d["y"][val], pred)["macro"]["f1"])
                bar.set_postfix(val_f1=history["validation macro F1"][-1])
    return net, pre, history


def calibrate(logits: torch.Tensor, y: np.ndarray) -> float:
    """Temperature that minimises the negative log-likelihood of held-out logits."""
    t = torch.zeros((), requires_grad=True)
    yt = torch.from_numpy(y)
    opt = torch.optim.LBFGS([t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(logits / t.exp(), yt)
        loss.backward()
        return loss

    opt.step(closure)
    return float(t.exp())


def cross_validate(d, cfg, out: Path, k=5):
    fold = folds_by_family(d["family"], d["y"], k)
    oof_logits = torch.zeros((len(d["y"]), 3))
    per_fold = []
    for f in range(k):
        tr, va = np.where(fold != f)[0], np.where(fold == f)[0]
        assert not set(d["family"][tr]) & set(d["family"][va])
        assert not set(d["client"][tr]) & set(d["client"][va]), "a client host is on both sides"
        net, pre, hist = fit(d, tr, cfg, val=va, desc=f"fold {f + 1}/{k}")
        logits = predict(net, tensors(pre, d, va))
        oof_logits[va] = logits
        rep = metrics.report(d["y"][va], logits.argmax(1).numpy())
        rep["families"] = sorted(set(d["family"][va]))
        per_fold.append(rep)
    overall = metrics.report(d["y"], oof_logits.argmax(1).numpy())
    return {"k": k, "grouping": "family (each family, and its hosts, in exactly one fold)", "per_fold": per_fold,
            "pooled_out_of_fold": overall}, oof_logits, fold


def confidence_threshold(probs: np.ndarray, y: np.ndarray, target=0.98) -> float:
    """Lowest top-class probability above which calibration-set accuracy reaches `target`
    (capped to 0.9); below it the sensor says `unknown`."""
    top = probs.max(1)
    right = probs.argmax(1) == y
    for thr in np.arange(0.34, 0.9, 0.01):
        keep = top >= thr
        if keep.sum() and right[keep].mean() >= target:
            return round(float(thr), 2)
    return 0.9


def timed(fn, *a, **kw):
    t0 = time.time()
    r = fn(*a, **kw)
    return r, time.time() - t0


def write_json(path: Path, obj):
    path.write_text(json.dumps(obj, indent=2) + "\n")


def schema_checks(d):
    schema = load_schema()
    assert d["static"].shape[1] == len(schema["static_features"])
    assert d["seq"].shape[1] == schema["sequence_length"]
    return schema
