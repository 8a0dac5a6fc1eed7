"""Where HTTP ranking fails: grouped 5-fold CV by run (real + augmentation, slice fits),
out-of-fold logits of every real HTTP flow and of a generated web-attack check
(`benches/flood/scenarios/http_bench.toml`, features by `nightjar replay --features`),
for one model of both apps (`shared`) and for a model fitted on HTTP flows only (`http`).
Prints, for real benign HTTP, which class outscores benign; ROC AUCs of benign against
attack and against malware by each class's margin over benign; and what each class's own
threshold catches at a given share of benign flagged.

    cd model && .venv/bin/python experiments/http_ranking.py real.npz http_aug.npz hb.npz out.npz
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model import dataset, train  # noqa: E402
from nightjar_model import realtrain as rt  # noqa: E402


def auc(neg, pos):
    s = np.concatenate([neg, pos])
    r = np.argsort(np.argsort(s)) + 1
    return float((r[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(neg) * len(pos)))


def caught_at(neg, pos, share):
    t = np.quantile(neg, 1 - share)
    return float((pos > t).mean())


def main(data, augment, bench, out):
    torch.set_num_threads(2)
    d = dataset.with_augmentation(dataset.load(Path(data)), [augment])
    hb = dataset.load(Path(bench))
    cfg = dict(rt.REAL_DEFAULTS, chars=int(d["chars"].shape[1]), augment=True, decision="slice")
    app = rt.app_of(d)
    res = {}
    for variant in ("shared", "http"):
        zs, idxs, zb = [], [], []
        for label, tr, te in rt.cv_splits(d):
            fit_idx, val_idx = rt.validation_runs(d, tr, seed=cfg["seed"])
            fit_idx = np.sort(np.concatenate([fit_idx, rt.augmented(d)]))
            if variant == "http":
                fit_idx, val_idx = fit_idx[app[fit_idx] == 1], val_idx[app[val_idx] == 1]
            net, pre, _ = rt.fit(d, fit_idx, cfg, val=val_idx, desc=f"{variant} {label}")
            te = te[app[te] == 1]
            zs.append(train.predict(net, train.tensors(pre, d, te, True)).numpy())
            idxs.append(te)
            zb.append(train.predict(net, train.tensors(pre, hb, np.arange(len(hb["y"])), True)).numpy())
        z, idx, zb = np.concatenate(zs), np.concatenate(idxs), np.mean(zb, 0)
        y = d["y"][idx]
        np.savez(f"{out}.{variant}.npz", z=z, idx=idx, zb=zb, yb=hb["y"])
        b = z[y == 0]
        top = np.argmax(b, 1)
        r = {"real_benign_http": int(len(b)), "benign_argmax_class": np.bincount(top, minlength=3).tolist()}
        for k, name in ((1, "attack"), (2, "malware")):
            m = z[:, k] - z[:, 0]
            r[f"auc_benign_vs_{name}"] = round(auc(m[y == 0], m[y == k]), 3)
            r[f"{name}_caught_at_10pct_real_benign"] = round(caught_at(m[y == 0], m[y == k], 0.10), 3)
            mb = zb[:, k] - zb[:, 0]
            if k == 1:
                r["bench_auc"] = round(auc(mb[hb["y"] == 0], mb[hb["y"] == 1]), 3)
                r["bench_attack_caught_at_1pct_bench_benign"] = round(caught_at(mb[hb["y"] == 0], mb[hb["y"] == 1], 0.01), 3)
                t = np.quantile(m[y == 0], 0.99)
                r["bench_attack_caught_at_1pct_real_benign"] = round(float((mb[hb["y"] == 1] > t).mean()), 3)
        res[variant] = r
        print(json.dumps({variant: r}), flush=True)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])
