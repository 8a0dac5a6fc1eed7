"""Evaluation of prequential online learning (`nightjar replay --feedback`): joins the
events with the capture's labels by 5-tuple, in the order the sensor wrote them (the
order it scored the flows), and reports how the verdicts on one family and on benign
traffic change as labels are learned. Every verdict predates its own flow's label."""

import csv
import json
from pathlib import Path

import numpy as np

CLASS = {"benign": 0, "attack": 1, "malware": 2}


def key(ip_a, port_a, ip_b, port_b):
    return (ip_a, int(port_a), ip_b, int(port_b))


def load(events: Path, labels: Path, feedback: Path):
    truth = {}
    for r in csv.DictReader(open(labels)):
        truth[key(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])] = (CLASS[r["class"]], r["family"])
    fed = set()
    for r in csv.DictReader(open(feedback)):
        fed.add(key(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"]))
    rows = []
    for line in open(events):
        e = json.loads(line)
        k = key(e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"])
        if k not in truth or e["verdict"]["score"] is None:
            continue
        y, fam = truth[k]
        rows.append((y, fam, e["verdict"]["class"], k in fed))
    return rows


def curve(rows, family, window=100):
    """Recall on `family` over the flows scored after each block of labels."""
    labelled = 0
    points, hits = [], []
    for y, fam, pred, fed in rows:
        if fam == family:
            hits.append((labelled, pred == "malware"))
            if fed:
                labelled += 1
    by = {}
    for n, h in hits:
        by.setdefault(n // 25 * 25, []).append(h)
    for n in sorted(by):
        points.append((n, float(np.mean(by[n])), len(by[n])))
    return points


def benign_precision(rows):
    pred_benign = [y for y, _, p, _ in rows if p == "benign"]
    return float(np.mean([y == 0 for y in pred_benign])) if pred_benign else float("nan")


def report(events, labels, feedback, family, baseline_events=None, out_png=None):
    rows = load(events, labels, feedback)
    fed_total = sum(1 for r in rows if r[3])
    after = []
    labelled = 0
    for y, fam, pred, fed in rows:
        if fam == family and labelled >= fed_total:
            after.append(pred == "malware")
        if fed and fam == family:
            labelled += 1
    res = {"flows": len(rows), "labels_in_events": fed_total,
           "family_recall_after_all_labels": float(np.mean(after)) if after else None,
           "family_flows_after_all_labels": len(after),
           "benign_precision": benign_precision(rows), "curve": curve(rows, family)}
    if baseline_events:
        base = load(baseline_events, labels, feedback)
        res["baseline_benign_precision"] = benign_precision(base)
        res["baseline_family_recall"] = float(np.mean([p == "malware" for _, f, p, _ in base if f == family]))
    if out_png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        c = res["curve"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p[0] for p in c], [p[1] for p in c], marker="o", label=f"{family} recall (flows scored next)")
        ax.axhline(res["benign_precision"], color="green", ls="--", label="benign precision (whole replay)")
        if baseline_events:
            ax.axhline(res["baseline_benign_precision"], color="grey", ls=":", label="benign precision without learning")
        ax.set_xlabel(f"labelled {family} flows learned so far")
        ax.set_ylabel("share")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title("Prequential online learning (nightjar replay --feedback)")
        fig.tight_layout()
        fig.savefig(out_png, dpi=120)
    return res
