"""`python -m nightjar_model rechoose`: the decision rule chosen again, under another
`--threshold` mode, from the logits a `train-real` run saved (`arrays.npz`), without fitting
anything: every split's rule on that split's own decision set, its pooled test re-measured,
and the candidate's rule on the final decision set written into its metadata (the graph and
its baked-in temperature unchanged; parity fixture brought up to date).

    .venv/bin/python -m nightjar_model rechoose --data real.npz --augment http_aug.npz \\
        --run reports/real-6 --threshold flag-classes [--model artifacts-real/nightjar.json]

Writes `<run>/rechoose-<mode>.json` (every mode's headline per protocol, the chosen mode's
pooled report) and `<run>/<protocol>_confusion_deployed_<mode>.png`."""

import json
import sys
from pathlib import Path

import numpy as np

from . import dataset, oodmain
from . import realtrain as rt
from .schema import CLASSES

TITLES = {"cv": "grouped 5-fold CV by run", "loso": "leave-one-source-out", "lofo": "leave-one-family-out"}


def protocol_arrays(arrays, name):
    """{split label: {test_idx, val_logits, val_y, val_app}} and the pooled (idx, logits)."""
    splits = {}
    for key in arrays.files:
        parts = key.split("/")
        if parts[0] == name and parts[1] == "split":
            splits.setdefault("/".join(parts[2:-1]), {})[parts[-1]] = arrays[key]
    return splits, arrays[f"{name}/pooled/idx"], arrays[f"{name}/pooled/logits"]


def remeasure(d, arrays, name, mode, targets, order):
    """Pooled test of protocol `name` with every split's rule chosen under `mode`."""
    splits, idx, logits = protocol_arrays(arrays, name)
    fits = [(label, splits[label]["test_idx"], splits[label]) for label in order]
    if not np.array_equal(np.concatenate([te for _, te, _ in fits]), idx):
        raise SystemExit(f"rechoose: {name}: the saved splits do not match the pooled test order")
    rules = rt.split_rules(d, fits, mode, targets)
    rep, *_ = rt.evaluate(d, idx, logits, *rt.pooled_rule(rules))
    return rep, {label: thr for label, thr, _ in rules}


def demo(model: Path, features: Path):
    """The candidate's verdicts (float and int8, novelty included) on feature lines, printed."""
    meta = json.loads(model.read_text())
    rows, static, seq, tokens, chars = dataset.feature_lines(features, meta.get("chars", 0))
    scored = {v: rt.score_onnx(model, static, seq, tokens, v, chars) for v in ("float", "int8")}
    out = []
    for i, j in enumerate(rows):
        row = {"flow": f"{j['client_ip']}:{j['client_port']} -> {j['server_ip']}:{j['server_port']}", "app": j["app"]}
        for v, (q, verdicts, _) in scored.items():
            row[v] = {"verdict": rt.VERDICTS[verdicts[i]], "probs": [round(float(x), 4) for x in q[i]]}
        out.append(row)
        print(row["flow"], row["app"], {v: (row[v]["verdict"], row[v]["probs"]) for v in scored})
    return out


def run(a):
    run_dir = Path(a.run)
    res = json.loads((run_dir / "results.json").read_text())
    arrays = np.load(run_dir / "arrays.npz")
    d = dataset.with_augmentation(dataset.load(Path(a.data)), a.augment)
    targets = res["config"].get("flag_targets")
    if a.flag_target:
        from .realmain import parse_targets

        targets = parse_targets(a.flag_target)
    modes = (a.threshold,) + tuple(m for m in rt.MODES if m != a.threshold)
    out = {"command": "python -m nightjar_model " + " ".join(sys.argv[1:]), "run": str(run_dir), "threshold_mode": a.threshold,
           "flag_targets": targets,
           "by_mode": {}}
    for name in ("cv", "loso", "lofo"):
        if name not in res:
            continue
        order = list(res[name]["splits"])
        for mode in modes:
            rep, rules = remeasure(d, arrays, name, mode, targets, order)
            out["by_mode"].setdefault(name, {})[mode] = rt.headline(rep)
            if mode == a.threshold:
                out[name] = {"pooled": rep, "rules": rules}
                dep = rep["deployed"]
                rt.plot_matrix(dep["confusion"]["matrix"], CLASSES, rt.VERDICTS,
                               f"{TITLES[name]}, sensor verdicts ({mode} rule; pooled test)\nmacro F1 "
                               f"{dep['macro_f1']:.3f}, benign flagged {dep['benign_flag_rate']:.1%}",
                               run_dir / f"{name}_confusion_deployed_{mode}{'-' + a.flag_target.replace('=', '').replace(',', '-') if a.flag_target else ''}.png")
            print(f"{name} {mode}: deployed macro F1 {rep['deployed']['macro_f1']:.3f}, benign flagged "
                  f"{rep['deployed']['benign_flag_rate']:.3f}")
    if a.model:
        model = Path(a.model)
        meta = json.loads(model.read_text())
        dec_idx, dec_logits = arrays["final/dec_idx"], arrays["final/dec_logits"]
        thr = rt.choose_decision(dec_logits, d["y"][dec_idx], rt.app_of(d)[dec_idx], a.threshold, targets,
                                 T=float(meta["temperature"]))
        meta["decision"] = {name: {"benign_log_offset": thr["apps"][name]["benign_offset"],
                                   "malware_log_offset": thr["apps"][name].get("malware_offset", 0.0),
                                   "unknown_below": thr["apps"][name]["unknown_below"],
                                   "unknown_scope": thr["apps"][name].get("unknown_scope", "all")} for name in rt.APPS}
        meta["unknown_below"] = thr["all"]["unknown_below"]
        meta.setdefault("metrics", {})["decision_rechosen"] = {"mode": a.threshold, "from": str(run_dir / "arrays.npz")}
        # The card's validation figures: the splits re-measured under the new rule.
        meta["metrics"]["validation"] = {name: out["by_mode"][name][a.threshold] for name in out["by_mode"]}
        model.write_text(json.dumps(meta, indent=1) + "\n")
        oodmain.refresh_parity(model)
        out["final"] = {"thresholds": thr, "model": str(model)}
        print("final rule:", json.dumps(meta["decision"]))
        if a.demo:
            out["demo"] = demo(model, Path(a.demo))
    tag = a.threshold + ("-" + a.flag_target.replace("=", "").replace(",", "-") if a.flag_target else "")
    rt.train.write_json(run_dir / f"rechoose-{tag}.json", out)
