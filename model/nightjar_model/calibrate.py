"""Per-deployment calibration of the decision rule (`python -m nightjar_model calibrate`):
the benign offset of one app refitted on the protected network's own benign traffic.

The shipped rule meets its benign flag target on the real corpus's benign flows, a mix
of many networks' traffic (an app test suite's odd requests among them). A web server's
own requests are another population: a threshold that keeps a thousand strangers'
clients quiet can be far higher than one that keeps a shop's own clients quiet, and
attacks on the shop then pass under it. Given `nightjar replay --features` of traffic the
operator vouches for as benign (a week of the server's requests, a clean capture of the
span port), this finds the smallest benign log offset (the graph and every other part of
the rule unchanged but `unknown_below`, lowered if the site's own benign flows would
otherwise come out `unknown` too often) that flags at most the target share of it, and
writes a copy of the model whose metadata says so.

numpy and ONNX Runtime only (no torch), so the sensor's own machine can run it.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from . import dataset, decision, export, ood
from .schema import Preprocessing

APPS = decision.APPS


# Benign log offsets tried, smallest first. Below 0 the rule asks less evidence than the
# graph's argmax: for a site whose benign traffic the graph finds plainly benign.
OFFSETS = np.round(np.arange(-6.0, 12.001, 0.05), 2)


class CalibrationError(Exception):
    pass


def min_flows(target):
    """Benign flows needed before a share `target` means anything: at least two flows
    may be flagged, and never fewer than 100."""
    return max(100, int(np.ceil(2.0 / target)))


def unknown_share(logp, off, m, u, scope="all"):
    v, _ = decision.deployed(logp, [off, 0.0, m], u, scope)
    return float((v == decision.UNKNOWN).mean())


def refit(logp, rule, target, share=decision.UNKNOWN_SHARE):
    """The rule refitted on benign flows `logp` (log-probabilities of the graph,
    temperature included): the smallest benign offset of `OFFSETS` that flags at most
    `target` of them, the malware offset kept, with `unknown_below` at each offset
    lowered (never raised) until at most `share` of the site's benign flows come out
    `unknown`. Without that cap the smallest offset would hide the site's everyday
    requests behind `unknown` instead of calling them benign. Returns the new rule and
    the flagged and unknown shares before and after."""
    y = np.zeros(len(logp), dtype=np.int64)
    u0, m, off0 = rule["unknown_below"], rule.get("malware_log_offset", 0.0), rule["benign_log_offset"]
    scope = rule.get("unknown_scope", "all")
    off, u = float(OFFSETS[-1]), u0
    for o in OFFSETS:
        _, p = decision.deployed(logp, [o, 0.0, m], 0.0)
        # The flows `unknown_below` may touch: every flow, or (scope "benign") those given benign.
        top = p.max(1) if scope == "all" else p.max(1)[p.argmax(1) == 0]
        uo = min(u0, float(np.quantile(top, share))) if len(top) else u0
        if decision.flag_rate(logp, y, [o, 0.0, m], uo, scope) <= target:
            off, u = float(o), uo
            break
    new = dict(rule, benign_log_offset=off, unknown_below=round(u, 4))
    u = new["unknown_below"]
    shares = {"flagged": {"before": round(decision.flag_rate(logp, y, [off0, 0.0, m], u0, scope), 4),
                          "after": round(decision.flag_rate(logp, y, [off, 0.0, m], u, scope), 4)},
              "unknown": {"before": round(unknown_share(logp, off0, m, u0, scope), 4),
                          "after": round(unknown_share(logp, off, m, u, scope), 4)}}
    return new, shares


def read(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if not rows:
        raise CalibrationError(f"{path}: no feature lines")
    return rows


def verdicts(meta, model_dir: Path, rows):
    """The sensor's verdicts on feature lines `rows` (graph by ONNX Runtime, then each
    app's rule from `meta`); also the log-probabilities, each flow's app and whether it is
    novel (`ood`: all False without the block)."""
    pre = Preprocessing.from_json(meta["preprocessing"])
    width = meta.get("chars", 0)
    static, seq, tokens, chars = dataset.line_arrays(rows, width)
    probs, emb = export.run_ort(model_dir / meta["files"]["float"]["path"],
                                export.feeds(pre, static, seq, tokens, chars=chars if width else None),
                                ("probs", "embedding"))
    apps = decision.apps_of(static)
    v, _ = decision.sensor_verdicts(meta, probs, apps, emb)
    novel = ood.novel(meta.get("ood"), emb)
    return v, np.log(np.clip(probs, 1e-30, 1.0)), apps, novel


def calibrate(model: Path, benign: Path, out: Path, apps, target):
    """Writes the calibrated copy of `model` into `out`; returns the report."""
    meta = json.loads(model.read_text())
    if "decision" not in meta:
        raise CalibrationError(f"{model}: no per-app decision rule (a model older than 2026.12.01-real-2)")
    rows = read(benign)
    versions = {r.get("schema_version") for r in rows}
    if versions != {meta["schema_version"]}:
        raise CalibrationError(f"{benign}: feature schema {sorted(map(str, versions))}, the model reads "
                               f"{meta['schema_version']}: replay the capture with the sensor that runs this model")
    _, logp, app_of, novel = verdicts(meta, model.parent, rows)
    report = {"model": str(model), "model_version": meta["model_version"], "benign": str(benign),
              "benign_sha256": hashlib.sha256(benign.read_bytes()).hexdigest(), "flag_target": target, "apps": {}}
    for app in apps:
        a = APPS.index(app)
        m = app_of == a
        n = int(m.sum())
        need = min_flows(target)
        if n < need:
            raise CalibrationError(f"{benign}: {n} {app} flows; a flag target of {target:.1%} needs at least {need}")
        rule = meta["decision"][app]
        new, shares = refit(logp[m], rule, target)
        report["apps"][app] = {"flows": n,
                               "benign_log_offset": {"before": rule["benign_log_offset"], "after": new["benign_log_offset"]},
                               "unknown_below": {"before": rule["unknown_below"], "after": new["unknown_below"]},
                               # Benign verdicts the `ood` block turns into `unknown` (not refitted here).
                               "novel": round(float(novel[m].mean()), 4)} | shares
        meta["decision"][app] = new
    meta["calibration"] = report
    out.mkdir(parents=True, exist_ok=True)
    for f in meta["files"].values():
        shutil.copy2(model.parent / f["path"], out / f["path"])
    if isinstance(meta.get("reference"), dict) and "path" in meta["reference"]:
        shutil.copy2(model.parent / meta["reference"]["path"], out / meta["reference"]["path"])
    (out / model.name).write_text(json.dumps(meta, indent=1) + "\n")
    return report
