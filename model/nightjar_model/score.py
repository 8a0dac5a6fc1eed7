"""`python -m nightjar_model score`: the sensor's own verdicts (`nightjar replay --events`)
against a capture's labels (nightjar-flood CSV or the real corpus's `flows.csv`), joined
by the order-free 5-tuple. Nothing is recomputed in Python: this measures what an analyst
would see, the decision rule and `unknown` included.

Counted as a detection ("flagged"): a verdict of `attack` or `malware`. `unknown` is a
miss; a flow with no score (the classifier off, or not a TLS/HTTP flow) is reported apart.
The binary figures are those of a web-attack benchmark: precision, recall and F1 of
"flagged" against "not benign", next to the benign share flagged."""

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import metrics
from .metrics import VERDICTS
from .schema import CLASSES


def flow_key(ip_a, port_a, ip_b, port_b):
    a, b = (ip_a, int(port_a)), (ip_b, int(port_b))
    return (a, b) if a <= b else (b, a)


def read_labels(path: Path):
    """5-tuple -> (class index, family); a tuple labelled twice with different classes is
    dropped (ambiguous), and counted."""
    out, clash = {}, set()
    for r in csv.DictReader(open(path, newline="")):
        if r.get("class") not in CLASSES:
            continue
        k = flow_key(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])
        v = (CLASSES.index(r["class"]), r.get("family", "") or "")
        if k in out and out[k][0] != v[0]:
            clash.add(k)
        out[k] = v
    for k in clash:
        out.pop(k)
    return out, len(clash)


def join(events: Path, labels: Path, app=None):
    """Rows (true class, family, verdict index, app) of the labelled events; and counts of
    what was left out."""
    truth, ambiguous = read_labels(labels)
    rows, left = [], Counter(ambiguous_labels=ambiguous)
    seen = set()
    for line in open(events):
        line = line.strip()
        if not line:
            continue
        e = json.loads(line)
        if app and e.get("app") != app:
            left["other_app"] += 1
            continue
        k = flow_key(e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"])
        if k not in truth:
            left["unlabelled_event"] += 1
            continue
        if k in seen:
            left["repeated_event"] += 1
            continue
        seen.add(k)
        v = (e.get("verdict") or {}).get("class")
        if v not in VERDICTS or (e.get("verdict") or {}).get("score") is None:
            left["no_score"] += 1
            continue
        y, fam = truth[k]
        rows.append((y, fam, VERDICTS.index(v), e.get("app", "")))
    left["labelled_without_event"] = len(set(truth) - seen)
    return rows, dict(left)


def report(rows):
    """Per class precision/recall/F1 of the verdicts and the 3 x 4 confusion with `unknown`
    (`metrics.deployed_report`, as train-real reports them), the binary flagged-vs-benign
    figures, and per family the share flagged and named."""
    if not rows:
        return {"flows": 0}
    y = np.asarray([r[0] for r in rows])
    v = np.asarray([r[2] for r in rows])
    dep = metrics.deployed_report(y, v)
    per = dep["per_class"]
    flagged = np.isin(v, (1, 2))
    bad = y > 0
    tp = int((flagged & bad).sum())
    prec = tp / flagged.sum() if flagged.any() else 0.0
    rec = tp / bad.sum() if bad.any() else 0.0
    fam = defaultdict(list)
    for t, f, p, _ in rows:
        fam[(CLASSES[t], f)].append(p)
    families = {f"{c}/{f}": {"flows": len(ps), "flagged": round(float(np.isin(ps, (1, 2)).mean()), 4),
                             "named": round(float(np.mean(np.asarray(ps) == CLASSES.index(c))), 4),
                             "unknown": round(float(np.mean(np.asarray(ps) == 3)), 4)}
                for (c, f), ps in sorted(fam.items())}
    return {"flows": int(len(rows)), "per_class": per,
            # Over the classes the capture holds (a web-attack check has no malware).
            "macro_f1": round(float(np.mean([per[c]["f1"] for c in CLASSES if per[c]["support"]])), 4),
            "flagged_vs_benign": {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                                  "f1": round(float(2 * prec * rec / (prec + rec)) if prec + rec else 0.0, 4)},
            "benign_flagged": dep["benign_flag_rate"] if (~bad).any() else None,
            "unknown_share": dep["unknown_share"], "confusion": dep["confusion"], "families": families}


def plot(rep, title, path):
    """The confusion matrix (rows: the labels the capture holds; columns: verdicts)."""
    cm = np.asarray(rep["confusion"]["matrix"])
    keep = [i for i in range(3) if cm[i].sum()]
    metrics.plot_matrix(cm[keep], [CLASSES[i] for i in keep], VERDICTS, title, path)
