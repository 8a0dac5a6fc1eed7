"""What novelty (`nightjar_model/ood.py`) does on sources a model has never seen: for every
leave-one-source-out split of a `train-real` run, the split's tested model is fitted again
(same configuration and seed as `realtrain.run_split`), the novelty block is fitted on its
fit flows' embeddings with the threshold from its validation slice, and the held-out
source's flows are decided by the split's own rule (from the run's `results.json`) with and
without novelty.

    .venv/bin/python experiments/ood_loso.py real.npz http_aug.npz reports/real-6/results.json \\
        [--rules reports/real-6/rechoose-flag.json] [--out reports/real-6/ood_loso.json]

Reports per held-out source and class: flows decided benign, novel among them (those become
`unknown`), and among the held-out malware/attack flows the model passes as benign, the
share novelty turns into `unknown`; and the like-data rate on the validation slice."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model import dataset, ood, train  # noqa: E402
from nightjar_model import realtrain as rt  # noqa: E402
from nightjar_model.schema import CLASSES  # noqa: E402


def embeddings(net, pre, d, idx, chars):
    x = train.tensors(pre, d, idx, chars)
    net.eval()
    logits, emb = [], []
    with torch.no_grad():
        for i in range(0, len(idx), 1024):
            b = [t[i:i + 1024] for t in x]
            e = net.embed(*b)
            emb.append(e)
            logits.append(net.head(e))
    return torch.cat(logits).numpy().astype(np.float64), torch.cat(emb).numpy().astype(np.float64)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("augment")
    p.add_argument("results")
    p.add_argument("--rules", help="a `rechoose` output whose LOSO rules to apply (default: the run's own)")
    p.add_argument("--out")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sources", help="comma-separated held-out sources to run (default all); rows already in --out are kept")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    res = json.loads(Path(a.results).read_text())
    cfg = dict(rt.REAL_DEFAULTS) | res["config"]
    rules = json.loads(Path(a.rules).read_text())["loso"]["rules"] if a.rules else None
    d = dataset.with_augmentation(dataset.load(Path(a.data)), [a.augment])
    chars = cfg.get("chars", 0) > 0
    out = {"command": " ".join(sys.argv), "splits": {}}
    if a.out and Path(a.out).exists():
        out["splits"] = json.loads(Path(a.out).read_text())["splits"]
    wanted = set(a.sources.split(",")) if a.sources else None
    for label, tr, te in rt.loso_splits(d):
        if wanted is not None and label not in wanted:
            continue
        thr = rules[label] if rules else res["loso"]["splits"][label]["thresholds"]
        fit_idx, val_idx = rt.validation_runs(d, tr, seed=cfg["seed"])
        fit_idx = np.sort(np.concatenate([fit_idx, rt.augmented(d)]))
        net, pre, _ = rt.fit(d, fit_idx, cfg, desc=f"loso {label}")
        _, fit_emb = embeddings(net, pre, d, fit_idx, chars)
        _, val_emb = embeddings(net, pre, d, val_idx, chars)
        logits, test_emb = embeddings(net, pre, d, te, chars)
        block = ood.block(fit_emb, d["y"][fit_idx], val_emb)
        T, delta, u, scope = rt.per_flow_rule(thr, rt.app_of(d)[te])
        _, v, *_ = rt.evaluate(d, te, logits, T, delta, u, scope)
        novel = ood.novel(block, test_emb)
        y = d["y"][te]
        row = {"flows": int(len(te)), "validation_novel": round(float(ood.novel(block, val_emb).mean()), 4),
               "test_novel": round(float(novel.mean()), 4), "per_class": {}}
        for c in range(3):
            m = y == c
            if not m.any():
                continue
            passed = m & (v == 0)
            row["per_class"][CLASSES[c]] = {
                "flows": int(m.sum()), "novel": round(float(novel[m].mean()), 4),
                "decided_benign": round(float(passed.sum() / m.sum()), 4),
                "decided_benign_and_novel_to_unknown": round(float((passed & novel).sum() / max(passed.sum(), 1)), 4)}
        out["splits"][label] = row
        print(label, json.dumps(row))
        if a.out:
            Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
