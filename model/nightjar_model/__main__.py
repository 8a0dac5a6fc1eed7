"""`python -m nightjar_model STEP`: corpus, dataset, cv, train, export, check.

  corpus   [--sensor NIGHTJAR] [--data DIR] [--out DIR]
                                             labelled real corpus: one `nightjar replay
                                             --features` per real capture (cached), labelling
                                             rules, flows.csv, features.jsonl, summary.json
  dataset  --features F.jsonl --labels L.csv --out D.npz --session NAME
  dataset  --features DIR/features.jsonl --out D.npz [--session real]
                                             (no --labels: the labels carried by `corpus`)
  train    --train D.npz --test T.npz        grouped 5-fold CV, final fit, held-out test,
                                             ONNX float + int8, metadata, parity fixture,
                                             reports and pictures in model/reports/
  train-real --data real.npz [--epochs N] [--threads 1] [--variants] [--demo F.jsonl]
                                             the same design on the labelled real corpus:
                                             grouped CV by run, leave-one-source-out,
                                             leave-one-family-out, thresholds and temperature
                                             on validation runs only, reports in
                                             reports/real/, candidate in artifacts-real/
  reference --train D.npz                    head weights + learning reference (embeddings of
                                             the calibration slice) for existing artifacts
  without  --train D.npz --family F --out DIR  a model trained without one family (the drift
                                             scenario of online learning): float ONNX,
                                             metadata, head and reference in DIR
  labels   --labels L.csv --family F --out FB.csv [--poison]
                                             feedback label files of the drift and poisoning
                                             scenarios, drawn from a capture's labels
  online   --events E --labels L --feedback F --family NAME [--baseline E0] [--png P]
                                             prequential learning curve of a family
  score    --events E --labels L [--app http] [--png P] [--out R.json]
                                             the sensor's verdicts against a capture's labels
  calibrate --model M.json --benign F.jsonl --out DIR [--app http] [--flag-target 0.01]
                                             a copy of the model whose benign offset for the
                                             app is refitted on the protected network's own
                                             benign traffic (features by `replay --features`)
                                             (per class, flagged vs benign, per family)
  check                                      CI: the committed artifacts load in ONNX
                                             Runtime, hashes match, parity fixture holds"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ART = ROOT / "artifacts"
REPORTS = ROOT / "reports"


def cmd_corpus(a):
    from . import realcorpus

    realcorpus.build(Path(a.sensor), Path(a.data), Path(a.out), a.jobs, a.recurrence_runs)


def cmd_dataset(a):
    from . import dataset

    if a.labels is None:
        dataset.build_labelled(Path(a.features), Path(a.out), a.session or "real")
    elif a.session is None:
        sys.exit("dataset: --session is required with --labels")
    else:
        dataset.build(Path(a.features), Path(a.labels), Path(a.out), a.session)


def cmd_train(a):
    import torch

    from . import dataset, export, metrics, train

    torch.set_num_threads(a.threads)
    cfg = dict(train.DEFAULTS, epochs=a.epochs)
    d = dataset.load(Path(a.train))
    t = dataset.load(Path(a.test))
    train.schema_checks(d)
    REPORTS.mkdir(exist_ok=True)
    ART.mkdir(exist_ok=True)
    results = {"config": cfg, "train_flows": int(len(d["y"])), "test_flows": int(len(t["y"]))}
    held = set(t["family"]) - set(d["family"])
    results["test_families_unseen_in_training"] = sorted(held)
    results["test_profiles_unseen_in_training"] = sorted(set(t["profile"]) - set(d["profile"]) - {""})

    variants = {"design": cfg}
    if a.variants:
        variants["design + class weights"] = dict(cfg, class_weights=True)
        variants["design, no URL TF-IDF"] = dict(cfg, vocab=0)
    cv = {}
    for name, vcfg in variants.items():
        rep, _, _ = train.cross_validate(d, vcfg, REPORTS)
        cv[name] = rep
        if name == "design":
            metrics.plot_confusion(rep["pooled_out_of_fold"], "5-fold CV (grouped by family/host)", REPORTS / "cv_confusion.png")
    results["cross_validation"] = cv
    all_idx = np.arange(len(d["y"]))
    # Final fit on 90 % of the training flows; the other 10 % (same families, other flows)
    # calibrate the softmax temperature and the `unknown` threshold for traffic like the
    # training mix. The test set is only reported, never used to choose anything.
    perm = np.random.default_rng(cfg["seed"]).permutation(len(all_idx))
    cut = len(perm) // 10
    cal_idx, fit_idx = np.sort(perm[:cut]), np.sort(perm[cut:])
    joined = {k: (np.concatenate([d[k], t[k]]) if k != "tokens" else d[k] + t[k]) for k in d}
    val_idx = np.arange(len(d["y"]), len(d["y"]) + len(t["y"]))
    (net, pre, hist), secs = train.timed(train.fit, joined, fit_idx, cfg, val=val_idx, desc="final fit")
    metrics.plot_curves(hist, REPORTS / "learning_curve.png")
    cal_logits = train.predict(net, train.tensors(pre, d, cal_idx))
    temperature = train.calibrate(cal_logits, d["y"][cal_idx])
    threshold = train.confidence_threshold(torch.softmax(cal_logits / temperature, 1).numpy(), d["y"][cal_idx])
    net.temperature.fill_(temperature)
    results["final_fit_seconds"] = round(secs, 1)
    results["learning_curve"] = hist

    version = time.strftime("%Y.%m.%d") + f"-{a.tag}"
    float_path, int8_path = ART / "nightjar-float.onnx", ART / "nightjar-int8.onnx"
    export.export_float(net, pre, d["static"].shape[1], d["seq"].shape[1:], float_path)
    calib = np.random.default_rng(0).choice(fit_idx, size=min(2048, len(fit_idx)), replace=False)
    export.quantize(float_path, int8_path, export.feeds(pre, d["static"][calib], d["seq"][calib], [d["tokens"][i] for i in calib]))

    test_feeds = export.feeds(pre, t["static"], t["seq"], t["tokens"])
    evals = {}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        probs = export.run_ort(path, test_feeds)
        pred = probs.argmax(1)
        rep = metrics.report(t["y"], pred)
        conf = probs.max(1) >= threshold
        rep["above_threshold"] = {"share": round(float(conf.mean()), 4), "accuracy": round(float((pred[conf] == t["y"][conf]).mean()), 4) if conf.any() else None}
        rep["per_family_recall"] = {f: round(float((pred[t["family"] == f] == t["y"][t["family"] == f]).mean()), 4) for f in sorted(set(t["family"]))}
        rep["onnxruntime_flows_per_sec_batch64_1thread"] = round(export.ort_speed(path, test_feeds[0]))
        evals[kind] = rep
        metrics.plot_confusion(rep, f"held-out test, {kind}", REPORTS / f"test_confusion_{kind}.png")
    results["test"] = evals
    results["temperature"] = temperature
    results["unknown_below"] = threshold

    parity_idx = np.concatenate([np.where(t["y"] == c)[0][:8] for c in range(3)])
    export.parity_fixture(pre, t, parity_idx, float_path, int8_path, ART / "parity.json")
    files = {k: {"path": p.name, "sha256": export.sha256(p), "bytes": p.stat().st_size} for k, p in (("float", float_path), ("int8", int8_path))}
    summary = {"cv_pooled": cv["design"]["pooled_out_of_fold"], "test_float": {k: evals["float"][k] for k in ("accuracy", "macro", "per_class")},
               "test_int8": {k: evals["int8"][k] for k in ("accuracy", "macro", "per_class")}}
    meta = export.metadata(pre, version, temperature, threshold, files, a.default, summary, d["static"].shape[1])
    meta["head"] = export.head_weights(float_path)
    meta["reference"] = export.learning_reference(pre, d, cal_idx, d["y"], float_path, ART / "nightjar-reference.json")
    (ART / "nightjar.json").write_text(json.dumps(meta, indent=1) + "\n")
    train.write_json(REPORTS / "results.json", results)
    print(json.dumps({"cv": cv["design"]["pooled_out_of_fold"]["macro"], "test_float": evals["float"]["macro"], "test_int8": evals["int8"]["macro"]}))


def cmd_train_real(a):
    import torch

    from . import realmain

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    realmain.run(a, ROOT, ART)


def cmd_reference(a):
    """Adds the head weights and the learning reference to committed artifacts trained
    before they existed (the same calibration slice `train` uses)."""
    from . import dataset, export, train
    from .schema import Preprocessing

    d = dataset.load(Path(a.train))
    meta = json.loads((ART / "nightjar.json").read_text())
    pre = Preprocessing.from_json(meta["preprocessing"])
    perm = np.random.default_rng(train.DEFAULTS["seed"]).permutation(len(d["y"]))
    cal_idx = np.sort(perm[: len(perm) // 10])
    float_path = ART / meta["files"]["float"]["path"]
    meta["head"] = export.head_weights(float_path)
    meta["reference"] = export.learning_reference(pre, d, cal_idx, d["y"], float_path, ART / "nightjar-reference.json")
    (ART / "nightjar.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta["reference"]))


def cmd_without(a):
    """The final fit of `train` on the training flows minus one family, calibrated and
    exported the same way (float only), with the head and reference online learning needs:
    the model of the drift scenario, which then meets that family for the first time."""
    import torch

    from . import dataset, export, metrics, train
    from .schema import CLASSES

    torch.set_num_threads(a.threads)
    cfg = dict(train.DEFAULTS, epochs=a.epochs)
    d = dataset.load(Path(a.train))
    if a.family not in set(d["family"]):
        sys.exit(f"{a.family}: no such family in {a.train}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = np.where(d["family"] != a.family)[0]
    perm = np.random.default_rng(cfg["seed"]).permutation(keep)
    cut = len(perm) // 10
    cal_idx, fit_idx = np.sort(perm[:cut]), np.sort(perm[cut:])
    net, pre, _ = train.fit(d, fit_idx, cfg, desc=f"fit without {a.family}")
    cal_logits = train.predict(net, train.tensors(pre, d, cal_idx))
    temperature = train.calibrate(cal_logits, d["y"][cal_idx])
    threshold = train.confidence_threshold(torch.softmax(cal_logits / temperature, 1).numpy(), d["y"][cal_idx])
    net.temperature.fill_(temperature)
    float_path = out / "nightjar-float.onnx"
    export.export_float(net, pre, d["static"].shape[1], d["seq"].shape[1:], float_path)
    held = np.where(d["family"] == a.family)[0]
    probs = export.run_ort(float_path, export.feeds(pre, d["static"][held], d["seq"][held], [d["tokens"][i] for i in held]))
    cal = metrics.report(d["y"][cal_idx], cal_logits.argmax(1).numpy())
    summary = {"without_family": a.family, "calibration": {k: cal[k] for k in ("accuracy", "macro", "per_class")},
               f"{a.family}_predicted": {c: int((probs.argmax(1) == i).sum()) for i, c in enumerate(CLASSES)}}
    files = {"float": {"path": float_path.name, "sha256": export.sha256(float_path), "bytes": float_path.stat().st_size}}
    version = time.strftime("%Y.%m.%d") + f"-without-{a.family}"
    meta = export.metadata(pre, version, temperature, threshold, files, "float", summary, d["static"].shape[1])
    meta["head"] = export.head_weights(float_path)
    meta["reference"] = export.learning_reference(pre, d, cal_idx, d["y"], float_path, out / "nightjar-reference.json")
    (out / "nightjar.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(summary))


def cmd_labels(a):
    from . import feedback

    if a.poison is None:
        res = feedback.drift(Path(a.labels), Path(a.out), a.family, a.share, a.limit, a.seed)
    else:
        res = feedback.poisoned(Path(a.labels), Path(a.out), a.family, a.share, a.limit, a.honest_share, a.poison,
                                a.seed)
    print(json.dumps(res))


def cmd_online(a):
    from . import online

    res = online.report(Path(a.events), Path(a.labels), Path(a.feedback), a.family, a.baseline, a.png)
    print(json.dumps(res))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


def cmd_ood(a):
    from . import oodmain

    if Path(a.model).resolve().parent == (ROOT / "artifacts").resolve() and not a.shipped:
        sys.exit("ood: writes into the model's directory; for the shipped artifacts/ say --shipped")
    oodmain.run(a)


def cmd_rechoose(a):
    from . import rechoose

    if a.model and Path(a.model).resolve().parent == (ROOT / "artifacts").resolve():
        sys.exit("rechoose: --model must be a candidate (artifacts-real/...), not the shipped artifacts/")
    rechoose.run(a)


def cmd_calibrate(a):
    from . import calibrate

    apps = [x for x in a.app.split(",") if x]
    bad = [x for x in apps if x not in calibrate.APPS]
    if bad or not apps:
        sys.exit(f"calibrate: --app takes tls, http or both (tls,http), not {a.app!r}")
    if not 0.0 < a.flag_target < 0.5:
        sys.exit(f"calibrate: --flag-target {a.flag_target} is not a share in (0, 0.5)")
    model, out = Path(a.model), Path(a.out)
    if out.resolve() == model.parent.resolve():
        sys.exit("calibrate: --out must not be the model's own directory (the shipped model stays as it is)")
    try:
        rep = calibrate.calibrate(model, Path(a.benign), out, apps, a.flag_target)
    except (calibrate.CalibrationError, OSError, KeyError, ValueError) as e:
        sys.exit(f"calibrate: {e}")
    for app, r in rep["apps"].items():
        o, u, f, k = r["benign_log_offset"], r["unknown_below"], r["flagged"], r["unknown"]
        print(f"{app}: {r['flows']} benign flows; benign offset {o['before']:.2f} -> {o['after']:.2f}, unknown below "
              f"{u['before']:.3f} -> {u['after']:.3f}; flagged {f['before']:.2%} -> {f['after']:.2%} (target "
              f"{a.flag_target:.2%}), unknown {k['before']:.2%} -> {k['after']:.2%}")
    print(f"calibrated model: {out / model.name} (run it with `nightjar --model {out / model.name} ...`)")


def cmd_score(a):
    from . import score

    rows, left = score.join(Path(a.events), Path(a.labels), a.app)
    if not rows:
        sys.exit(f"score: no labelled, scored flow joined ({left}); are the events and labels of the same capture?")
    res = score.report(rows) | {"left_out": left, "events": a.events, "labels": a.labels, "app": a.app}
    if a.png:
        score.plot(res, a.title or f"{Path(a.events).name}: sensor verdicts", a.png)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    fv = res["flagged_vs_benign"]
    print(f"{res['flows']} flows; flagged vs benign: P {fv['precision']} R {fv['recall']} F1 {fv['f1']}; "
          f"benign flagged {res['benign_flagged']}; unknown {res['unknown_share']}; left out {left}")
    for c, r in res["per_class"].items():
        print(f"  {c:8} P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} ({int(r['support'])})")
    for f, r in res["families"].items():
        print(f"  {f:32} flagged {r['flagged']:.3f} named {r['named']:.3f} unknown {r['unknown']:.3f} ({r['flows']})")


def cmd_check(a):
    from . import export

    meta = json.loads((ART / "nightjar.json").read_text())
    for kind, f in meta["files"].items():
        got = export.sha256(ART / f["path"])
        if got != f["sha256"]:
            sys.exit(f"{f['path']}: sha256 {got} differs from nightjar.json ({f['sha256']})")
    fixture = json.loads((ART / "parity.json").read_text())
    from .schema import Preprocessing

    pre = Preprocessing.from_json(meta["preprocessing"])
    flows = fixture["flows"]
    static = np.asarray([f["static_features"] for f in flows], dtype=np.float32)
    seq = np.asarray([[p + r for p, r in zip(f["packets"], f["records"])] for f in flows], dtype=np.float32)
    width = meta.get("chars", 0)
    chars = None
    if width:
        from .dataset import char_ids

        chars = np.asarray([char_ids(f.get("chars", []), width) for f in flows])
    feed = export.feeds(pre, static, seq, [f["url_tokens"] for f in flows], batch=len(flows), chars=chars)
    for kind, f in meta["files"].items():
        probs = export.run_ort(ART / f["path"], feed)
        err = float(np.abs(probs - np.asarray(fixture["expected"][kind])).max())
        if err > 1e-5:
            sys.exit(f"{kind}: ONNX Runtime differs from the parity fixture by {err}")
        print(f"{kind}: sha256 ok, ONNX Runtime reproduces the parity fixture (max diff {err:.2e})")


def main():
    p = argparse.ArgumentParser(prog="python -m nightjar_model")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("corpus", help="labelled real corpus from ../../shared/data/real_traffic")
    s.add_argument("--sensor", default=str(ROOT.parent / "target/release/nightjar"),
                   help="the nightjar binary (a copy: the cache keys on its hash)")
    s.add_argument("--data", default=str(ROOT.parent.parent / "shared/data/real_traffic"))
    s.add_argument("--out", default=str(ROOT / "corpus"))
    s.add_argument("--jobs", type=int, default=2, help="sensor replays at once (at most 2)")
    s.add_argument("--recurrence-runs", type=int, default=5,
                   help="report sandbox destinations reached from at least this many unrelated runs")
    s = sub.add_parser("dataset")
    s.add_argument("--features", required=True)
    s.add_argument("--labels", help="nightjar-flood labels CSV; without it, the labels in the feature lines (corpus)")
    s.add_argument("--out", required=True)
    s.add_argument("--session")
    s = sub.add_parser("train")
    s.add_argument("--train", required=True)
    s.add_argument("--test", required=True)
    s.add_argument("--epochs", type=int, default=8)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--tag", default="1")
    s.add_argument("--default", choices=["float", "int8"], default="float")
    s.add_argument("--variants", action="store_true", help="also cross-validate the side-by-side variants")
    s = sub.add_parser("train-real", help="train and validate on the labelled real corpus (grouped by run/source/family)")
    s.add_argument("--data", required=True, help="`dataset` output of corpus/features.jsonl")
    s.add_argument("--epochs", type=int, default=None, help="passes over the training flows (default 20)")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--balance", choices=["cap", "weight", "none"], default=None, help="per-run balancing (default cap)")
    s.add_argument("--cap", type=int, default=None, help="flows per (run, class) and pass (default 40)")
    s.add_argument("--threshold", choices=["offset", "classes", "flag", "flag-classes", "unknown"], default="offset",
                   help="how the benign flag target is met: a benign offset (default), class log offsets "
                        "(benign, and malware against attack), the offset with `unknown` for weak benign verdicts only "
                        "(flag; flag-classes: with class offsets), or a higher unknown threshold")
    s.add_argument("--variants", action="store_true", help="also cross-validate the balancing variants (CV only)")
    s.add_argument("--demo", help="features of the demo captures (`nightjar replay --features`), scored by the candidate")
    s.add_argument("--reports", default=str(ROOT / "reports" / "real"))
    s.add_argument("--out", default=str(ROOT / "artifacts-real"), help="candidate model directory (never artifacts/)")
    s.add_argument("--tag", default="real-1")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--augment", action="append", default=[],
                   help="`dataset` arrays of a nightjar-flood corpus added to every fit (never validated or tested on); repeatable")
    s.add_argument("--no-chars", action="store_true", help="without the HTTP character input (schema-1 style graph)")
    s.add_argument("--protocols", default="cv,loso,lofo", help="validation protocols to run (comma-separated)")
    s.add_argument("--decision", choices=["oof", "slice"], default="oof",
                   help="choose T, offsets and unknown_below on out-of-fold logits of the training runs (oof) "
                        "or on one validation slice (slice)")
    s.add_argument("--inner-folds", type=int, default=3, help="inner folds by run per split for --decision oof")
    s.add_argument("--flag-target", default="",
                   help="benign flag target per app, e.g. tls=0.01,http=0.02 (default 0.01 each)")
    s = sub.add_parser("reference")
    s.add_argument("--train", required=True)
    s = sub.add_parser("without")
    s.add_argument("--train", required=True)
    s.add_argument("--family", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--epochs", type=int, default=8)
    s.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("labels")
    s.add_argument("--labels", required=True, help="the capture's labels (nightjar-flood CSV)")
    s.add_argument("--family", required=True, help="the family labelled for the drift scenario")
    s.add_argument("--out", required=True)
    s.add_argument("--share", type=float, default=0.3, help="share of the family's flows labelled")
    s.add_argument("--limit", type=int, default=200, help="at most this many family labels")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--honest-share", type=float, default=0.05, help="with --poison: share of all flows labelled truly")
    s.add_argument("--poison", type=int, help="flipped labels from source `feed` (0: the honest labels alone)")
    s = sub.add_parser("online")
    s.add_argument("--events", required=True)
    s.add_argument("--labels", required=True, help="the capture's labels (nightjar-flood CSV)")
    s.add_argument("--feedback", required=True, help="the labels given to --feedback")
    s.add_argument("--family", required=True)
    s.add_argument("--baseline", help="events of the same replay without learning")
    s.add_argument("--png")
    s.add_argument("--out")
    s = sub.add_parser("score", help="the sensor's verdicts (replay --events) against a capture's labels")
    s.add_argument("--events", required=True, help="`nightjar replay --events` output")
    s.add_argument("--labels", required=True, help="nightjar-flood labels CSV or corpus/flows.csv")
    s.add_argument("--app", choices=["tls", "http"], help="only flows of this app")
    s.add_argument("--out", help="the report as JSON")
    s.add_argument("--png", help="confusion matrix picture (rows: label, columns: verdict)")
    s.add_argument("--title")
    s = sub.add_parser("calibrate", help="refit an app's benign offset on the protected network's own benign traffic")
    s.add_argument("--model", required=True, help="the model's metadata (artifacts/nightjar.json)")
    s.add_argument("--benign", required=True, help="`nightjar replay --features` of traffic known to be benign")
    s.add_argument("--app", default="http", help="apps to refit: tls, http or tls,http (default http)")
    s.add_argument("--flag-target", type=float, default=0.01, help="share of those flows flagged at most (0.01)")
    s.add_argument("--out", required=True, help="directory of the calibrated copy (never the model's own)")
    s = sub.add_parser("ood", help="fit the novelty block (benign verdicts on flows unlike the training flows: unknown) "
                                   "of a train-real model and write it into its metadata and parity fixture")
    s.add_argument("--model", required=True, help="the model's metadata (artifacts-real/nightjar.json)")
    s.add_argument("--data", required=True, help="the real arrays the model was trained on (real.npz)")
    s.add_argument("--augment", action="append", help="augmentation arrays it was trained with (repeatable)")
    s.add_argument("--arrays", required=True, help="train-real's arrays.npz (the final fit's calibration slice)")
    s.add_argument("--quantile", type=float, default=0.99, help="of the calibration slice's distances (0.99)")
    s.add_argument("--shipped", action="store_true", help="allow writing into artifacts/")
    s = sub.add_parser("rechoose", help="choose a train-real run's decision rule again under another --threshold mode "
                                        "from its saved logits (no fitting) and re-measure every split")
    s.add_argument("--data", required=True, help="the real arrays of the run (real.npz)")
    s.add_argument("--augment", action="append", default=[], help="its augmentation arrays (repeatable)")
    s.add_argument("--run", required=True, help="the run's reports directory (results.json, arrays.npz)")
    s.add_argument("--threshold", required=True, choices=["offset", "classes", "flag", "flag-classes", "unknown"])
    s.add_argument("--model", help="the run's candidate metadata: its rule rewritten (never artifacts/)")
    s.add_argument("--demo", help="feature lines the candidate's new rule is shown on (with --model)")
    s.add_argument("--flag-target", help="per-app benign flag targets instead of the run's (tls=0.01,http=0.05)")
    sub.add_parser("check")
    a = p.parse_args()
    {"corpus": cmd_corpus, "dataset": cmd_dataset, "train": cmd_train, "train-real": cmd_train_real, "reference": cmd_reference, "without": cmd_without, "labels": cmd_labels, "online": cmd_online, "score": cmd_score, "calibrate": cmd_calibrate, "ood": cmd_ood, "rechoose": cmd_rechoose, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
