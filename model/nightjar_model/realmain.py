"""`python -m nightjar_model train-real`: grouped CV by run, leave-one-source-out,
leave-one-family-out, the final fit and the candidate export (see realtrain.py for the
protocol). Reports under reports/real/, the candidate under artifacts-real/ (never over
artifacts/, the shipped model)."""

import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from . import dataset, export, oodmain, train
from . import realtrain as rt
from .schema import CLASSES


def variant_grid(cfg):
    """Balancing and training variants, cross-validated side by side (CV only, 3 seeds)."""
    return {
        "design (cap 40/run, class weights, static noise 0.5)": cfg,
        "no static noise": dict(cfg, noise=0.0),
        "seed's plain training (no balancing, no class weights, no noise)": dict(cfg, balance="none", class_weights=False, noise=0.0),
        "no balancing (class weights, noise)": dict(cfg, balance="none"),
        "weight min(1, 40/n) instead of cap": dict(cfg, balance="weight"),
        "cap 20/run": dict(cfg, cap=20),
        "no class weights": dict(cfg, class_weights=False),
        "static noise 1.0": dict(cfg, noise=1.0),
        "no character input": dict(cfg, chars=0),
        "no generated augmentation": dict(cfg, augment=False),
    }


VARIANT_KEYS = ("balance", "cap", "class_weights", "noise", "dropout", "epochs", "chars", "augment")


def corpus_summary(d):
    """Counts of the real flows; generated augmentation (`--augment`) apart."""
    aug = d["source"] == rt.AUG_SOURCE
    out = _counts({k: (v[~aug] if k != "tokens" else None) for k, v in d.items()})
    if aug.any():
        out["augmentation"] = {c: int((d["y"][aug] == i).sum()) for i, c in enumerate(CLASSES)}
    return out


def _counts(d):
    out = {"flows": int(len(d["y"])), "runs": int(len(set(d["run"]))),
           "per_class": {c: int((d["y"] == i).sum()) for i, c in enumerate(CLASSES)}, "per_source": {}}
    for s in sorted(set(d["source"])):
        m = d["source"] == s
        out["per_source"][s] = {c: int((d["y"][m] == i).sum()) for i, c in enumerate(CLASSES)}
        out["per_source"][s]["runs"] = int(len(set(d["run"][m])))
    if "why" in d:
        out["per_rule"] = dict(Counter(d["why"].tolist()).most_common())
    n = Counter(d["run"].tolist())
    out["largest_runs"] = dict(n.most_common(6))
    return out


def parse_targets(text):
    """`tls=0.01,http=0.02` -> {"tls": 0.01, "http": 0.02} (apps not named: FLAG_TARGET)."""
    out = dict(rt.FLAG_TARGETS)
    for part in filter(None, (text or "").split(",")):
        app, _, share = part.partition("=")
        if app not in rt.APPS or not share:
            sys.exit(f"--flag-target: {part!r} is not app=share with app one of {', '.join(rt.APPS)}")
        v = float(share)
        if not 0.0 <= v < 1.0:
            sys.exit(f"--flag-target: {part!r}: the share must be within [0, 1)")
        out[app] = v
    return out


def run(a, root: Path, shipped: Path):
    t_start = time.time()
    d = dataset.with_augmentation(dataset.load(Path(a.data)), a.augment)
    train.schema_checks(d)
    if "why" not in d:
        print("note: the arrays have no `why` column (older `dataset`): per-rule reports and weak-label weights are off")
    cfg = dict(rt.REAL_DEFAULTS)
    for k in ("epochs", "balance", "cap", "seed"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    cfg["chars"] = 0 if a.no_chars or "chars" not in d else int(d["chars"].shape[1])
    cfg["augment"] = bool(a.augment)
    cfg["decision"] = a.decision
    cfg["inner_folds"] = a.inner_folds
    cfg["flag_targets"] = parse_targets(a.flag_target)
    mode = a.threshold
    modes = (mode,) + tuple(m for m in rt.MODES if m != mode)
    out = Path(a.out).resolve()
    if out == shipped.resolve():
        sys.exit("train-real writes a candidate: --out must not be the shipped artifacts/ directory")
    reports = Path(a.reports)
    reports.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    results = {"command": "python -m nightjar_model " + " ".join(sys.argv[1:]), "config": cfg, "threshold_mode": mode,
               "flag_target": cfg["flag_targets"], "unknown_share_on_validation": rt.UNKNOWN_SHARE,
               "corpus": corpus_summary(d), "timings_seconds": {}}
    timings = results["timings_seconds"]

    if a.variants:
        t0 = time.time()
        grid = {}
        for name, vcfg in variant_grid(cfg).items():
            seeds = {}
            for k in range(3):
                scfg = dict(vcfg, seed=vcfg["seed"] + k)
                res = rt.pooled(d, rt.cv_splits(d), scfg, f"variant {name} seed {scfg['seed']}", modes)
                seeds[scfg["seed"]] = res["by_mode"]
            mean = {m: {k: round(float(np.mean([seeds[s][m][k] for s in seeds])), 4)
                        for k in ("argmax_macro_f1", "deployed_macro_f1", "run_balanced_macro_f1", "benign_flag_rate",
                                  "non_benign_alerted", "unknown_share")} for m in modes}
            for m in modes:
                mean[m]["argmax_macro_f1_std"] = round(float(np.std([seeds[s][m]["argmax_macro_f1"] for s in seeds])), 4)
            grid[name] = {"config": {k: vcfg[k] for k in VARIANT_KEYS}, "cv_pooled_mean_over_seeds": mean,
                          "cv_pooled_per_seed": seeds}
            print(f"variant {name}: {json.dumps(mean[mode])}", flush=True)
        results["variants_cv"] = grid
        timings["variants"] = round(time.time() - t0, 1)

    protocols = {}
    wanted = a.protocols.split(",")
    for name, splits in (("cv", rt.cv_splits(d)), ("loso", rt.loso_splits(d)),
                         ("lofo", rt.lofo_splits(d, rt.LOFO_FAMILIES))):
        if name not in wanted:
            continue
        t0 = time.time()
        protocols[name] = rt.pooled(d, splits, cfg, name, modes)
        timings[name] = round(time.time() - t0, 1)
    titles = {"cv": "grouped 5-fold CV by run", "loso": "leave-one-source-out", "lofo": "leave-one-family-out (held-out runs)"}
    for name, res in protocols.items():
        rep = res["pooled"]
        dep = rep["deployed"]
        rt.plot_matrix(dep["confusion"]["matrix"], CLASSES, rt.VERDICTS,
                       f"{titles[name]}, sensor verdicts (pooled test)\nmacro F1 {dep['macro_f1']:.3f}, benign flagged "
                       f"{dep['benign_flag_rate']:.1%}", reports / f"{name}_confusion_deployed.png")
        rt.plot_matrix(rep["argmax_confusion"], CLASSES, CLASSES,
                       f"{titles[name]}, argmax (no threshold)\nmacro F1 {rep['argmax']['macro']['f1']:.3f}",
                       reports / f"{name}_confusion_argmax.png")
    curves_op = {titles[n]: protocols[n]["pooled_arrays"] for n in ("cv", "loso") if n in protocols}
    if curves_op:
        results["operating_curves"] = rt.plot_operating(d, curves_op, reports / "operating_curves.png")
    if "lofo" in protocols:
        results["lofo_per_family"] = rt.lofo_family_view(d, protocols["lofo"], rt.LOFO_FAMILIES)
    curves = {}
    for name in [p for p in ("cv", "loso") if p in protocols]:
        p = protocols[name]["pooled_arrays"]
        y = d["y"][p["idx"]]
        curves[f"{titles[name]} (pooled test)"] = {"before (T = 1)": (p["raw"], y), "temperature (validation runs)": (p["cal"], y),
                                                   "deployed (T + benign offset)": (p["dep"], y)}

    # Final fit on every real run but a calibration slice of runs (plus the augmentation).
    t0 = time.time()
    all_idx = rt.real(d)
    width = cfg["chars"]
    fit_idx, cal_idx = rt.validation_runs(d, all_idx, share=0.15, seed=cfg["seed"])
    if cfg["augment"]:
        fit_idx = np.sort(np.concatenate([fit_idx, rt.augmented(d)]))
    net, pre, hist = rt.fit(d, fit_idx, cfg, val=cal_idx, desc="final fit")
    cal_logits = train.predict(net, train.tensors(pre, d, cal_idx, width > 0)).numpy().astype(np.float64)
    apps = rt.app_of(d)
    if cfg["decision"] == "oof":
        # The rule from out-of-fold logits of every real run: the CV folds' test logits when
        # CV ran with this configuration, else five fits here.
        if "cv" in protocols:
            dec_idx, dec_logits = protocols["cv"]["pooled_arrays"]["idx"], protocols["cv"]["pooled_arrays"]["logits"]
        else:
            dec_idx, dec_logits = rt.out_of_fold(d, all_idx, cfg, "final decision", k=5)
    else:
        dec_idx, dec_logits = cal_idx, cal_logits
    thr = rt.choose_decision(dec_logits, d["y"][dec_idx], apps[dec_idx], mode, cfg["flag_targets"])
    thr["chosen_on"] = {"set": "out-of-fold logits of all real runs (5 folds by run)" if cfg["decision"] == "oof"
                        else "the final fit's calibration slice", "flows": int(len(dec_idx)),
                        "runs": int(len(set(d["run"][dec_idx])))}
    T = thr["temperature"]
    with torch.no_grad():
        net.temperature.fill_(T)
    cal_rep, _, _, cal_dep, _ = rt.evaluate(d, cal_idx, cal_logits, *rt.per_flow_rule(thr, apps[cal_idx]))
    if cfg["decision"] == "oof":
        dec_rep, *_ = rt.evaluate(d, dec_idx, dec_logits, *rt.per_flow_rule(thr, apps[dec_idx]))
        results["decision_set_report_not_a_test"] = rt.headline(dec_rep)
    decision = {name: {"benign_log_offset": thr["apps"][name]["benign_offset"],
                       "malware_log_offset": thr["apps"][name].get("malware_offset", 0.0),
                       "unknown_below": thr["apps"][name]["unknown_below"],
                       "unknown_scope": thr["apps"][name].get("unknown_scope", "all")} for name in rt.APPS}
    curves["final fit, calibration runs (chose T and the rules; not a test)"] = {
        "before (T = 1)": (rt.softmax(cal_logits), d["y"][cal_idx]),
        "temperature": (rt.softmax(cal_logits / T), d["y"][cal_idx]),
        "deployed": (cal_dep, d["y"][cal_idx])}
    rt.plot_reliability(curves, reports / "reliability.png")

    version = time.strftime("%Y.%m.%d") + f"-{a.tag}"
    float_path, int8_path = out / "nightjar-float.onnx", out / "nightjar-int8.onnx"
    export.export_float(net, pre, d["static"].shape[1], d["seq"].shape[1:], float_path)
    calib = np.random.default_rng(0).choice(fit_idx, size=min(2048, len(fit_idx)), replace=False)
    export.quantize(float_path, int8_path, export.feeds(pre, d["static"][calib], d["seq"][calib], [d["tokens"][i] for i in calib],
                                                        chars=export.chars_of(d, calib, width)))
    cal_feeds = export.feeds(pre, d["static"][cal_idx], d["seq"][cal_idx], [d["tokens"][i] for i in cal_idx],
                             chars=export.chars_of(d, cal_idx, width))
    torch_probs = rt.softmax(cal_logits / T)
    meta_probe = {"decision": decision, "unknown_below": thr["all"]["unknown_below"]}
    onnx_eval = {}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        probs = export.run_ort(path, cal_feeds)
        v, _ = rt.sensor_verdicts(meta_probe, probs, apps[cal_idx])
        onnx_eval[kind] = {"max_abs_diff_vs_torch": float(np.abs(probs - torch_probs).max()),
                           "calibration_slice_deployed": {k: rt.deployed_report(d["y"][cal_idx], v)[k]
                                                          for k in ("macro_f1", "benign_flag_rate", "unknown_share")}}
    ycal = d["y"][cal_idx]
    # Parity fixture: 8 flows per class, HTTP and TLS both where the slice has them.
    parity_idx = np.unique(np.concatenate([cal_idx[(ycal == c) & (apps[cal_idx] == a)][:4] for c in range(3) for a in (0, 1)]
                                          + [cal_idx[ycal == c][:4] for c in range(3)]))
    names = lambda probs: [rt.VERDICTS[k] for k in rt.sensor_verdicts(meta_probe, probs, apps[parity_idx])[0]]  # noqa: E731
    export.parity_fixture(pre, d, parity_idx, float_path, int8_path, out / "parity.json", chars_width=width, verdicts=names)
    files = {k: {"path": p.name, "sha256": export.sha256(p), "bytes": p.stat().st_size}
             for k, p in (("float", float_path), ("int8", int8_path))}
    summary = {"trained_on": "labelled real corpus (model/corpus), all runs but the calibration slice"
                             + (", plus generated HTTP augmentation (nightjar-flood)" if cfg["augment"] else ""),
               "validation": {name: protocols[name]["by_mode"][mode] for name in protocols}}
    meta = export.metadata(pre, version, T, thr["all"]["unknown_below"], files, "float", summary, d["static"].shape[1],
                           chars_width=width, decision=decision)
    meta["head"] = export.head_weights(float_path)
    meta["reference"] = export.learning_reference(pre, d, cal_idx, d["y"], float_path, out / "nightjar-reference.json",
                                                  chars_width=width)
    (out / "nightjar.json").write_text(json.dumps(meta, indent=1) + "\n")
    # Novelty: a benign verdict on a flow unlike the final fit's flows becomes `unknown`.
    ood_report = oodmain.attach(out / "nightjar.json", d, fit_idx, cal_idx,
                                "the final fit's flows; threshold from its calibration slice")
    timings["final_fit_and_export"] = round(time.time() - t0, 1)
    results["final"] = {"version": version, "fit_flows": int(len(fit_idx)), "calibration_flows": int(len(cal_idx)),
                        "calibration_runs": int(len(set(d["run"][cal_idx]))), "thresholds": thr, "history": hist,
                        "calibration_slice_report_not_a_test": rt.headline(cal_rep), "onnx": onnx_eval, "files": files,
                        "ood": ood_report,
                        "directory": str(out)}

    # The shipped model (never trained on real traffic) on the whole real corpus.
    probs, v, smeta = rt.score_onnx(shipped / "nightjar.json", d["static"][all_idx], d["seq"][all_idx],
                                    [d["tokens"][i] for i in all_idx], chars=d["chars"][all_idx])
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    ones = np.ones(len(all_idx))
    srep, *_ = rt.evaluate(d, all_idx, logp, ones, np.zeros((len(all_idx), 3)), np.full(len(all_idx), smeta["unknown_below"]))
    results["shipped_on_real"] = {"model_version": smeta["model_version"], "unknown_below": smeta["unknown_below"],
                                  "headline": rt.headline(srep), "per_source": srep["per_source"],
                                  "per_family": srep["per_family"], "per_rule": srep.get("per_rule", {}),
                                  "argmax": srep["argmax"], "deployed": srep["deployed"]}
    rt.plot_matrix(srep["deployed"]["confusion"]["matrix"], CLASSES, rt.VERDICTS,
                   f"shipped {smeta['model_version']} on the real corpus\nmacro F1 {srep['deployed']['macro_f1']:.3f}, "
                   f"benign flagged {srep['deployed']['benign_flag_rate']:.1%}", reports / "shipped_confusion_deployed.png")

    if a.demo:
        rows, static, seq, tokens, chars = dataset.feature_lines(Path(a.demo), width)
        demo = []
        scored = {k: rt.score_onnx(p, static, seq, tokens, variant, chars)
                  for k, p, variant in (("candidate float", out / "nightjar.json", "float"),
                                        ("candidate int8", out / "nightjar.json", "int8"),
                                        ("shipped float", shipped / "nightjar.json", "float"))}
        for i, j in enumerate(rows):
            row = {"flow": f"{j['client_ip']}:{j['client_port']} -> {j['server_ip']}:{j['server_port']}", "app": j["app"]}
            for k, (p, vv, _) in scored.items():
                row[k] = {"verdict": rt.VERDICTS[vv[i]], "probs": [round(float(x), 4) for x in p[i]]}
            demo.append(row)
        results["demo"] = {"features": a.demo, "flows": demo}
        for row in demo:
            print(row["flow"], row["app"], {k: row[k]["verdict"] for k in scored})

    rt.save_arrays(reports / "arrays.npz", protocols,
                   {"dec_idx": dec_idx, "dec_logits": dec_logits, "cal_idx": cal_idx, "cal_logits": cal_logits})
    for name, res in protocols.items():
        results[name] = rt.strip(res)
    timings["total"] = round(time.time() - t_start, 1)
    train.write_json(reports / "results.json", results)
    print(json.dumps({name: protocols[name]["by_mode"][mode]["deployed_macro_f1"] for name in protocols}
                     | {"shipped": results["shipped_on_real"]["headline"]["deployed_macro_f1"], "final": thr}))
