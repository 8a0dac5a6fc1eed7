"""Label files for `nightjar replay --feedback`, drawn from a capture's nightjar-flood labels:
the drift scenario (a share of one family's flows, as an analyst would triage them) and the
poisoning scenario (honest labels from one source plus flipped labels from another)."""

import csv
from pathlib import Path

import numpy as np

COLUMNS = ["client_ip", "client_port", "server_ip", "server_port", "class", "source"]
FLIP = {"benign": "malware", "malware": "benign"}


def read(labels: Path):
    rows = list(csv.DictReader(open(labels)))
    rows.sort(key=lambda r: float(r["start_ts"]))
    return rows


def family_share(rows, family, share, limit, rng):
    """`share` of `family`'s flows, drawn at random, the first `limit` of them in capture order."""
    idx = [i for i, r in enumerate(rows) if r["family"] == family]
    pick = sorted(i for i in idx if rng.random() < share)
    return pick[:limit]


def write(path: Path, rows, picks):
    """`picks`: (row index, class name, source), written in capture order."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i, cls, source in sorted(picks):
            r = rows[i]
            w.writerow([r["client_ip"], r["client_port"], r["server_ip"], r["server_port"], cls, source])


def drift(labels: Path, out: Path, family: str, share=0.3, limit=200, seed=0, source="file"):
    rows = read(labels)
    rng = np.random.default_rng(seed)
    pick = family_share(rows, family, share, limit, rng)
    if not pick:
        raise SystemExit(f"{labels}: no flow of family {family}")
    write(out, rows, [(i, rows[i]["class"], source) for i in pick])
    return {"labels": len(pick), "family": family}


def poisoned(labels: Path, out: Path, family: str, share=0.3, limit=200, honest_share=0.05, flipped=1000,
             seed=0, honest_source="analyst", poison_source="feed"):
    """The drift labels plus `honest_share` of every flow, true, from `honest_source`; and
    `flipped` labels from `poison_source`: benign flows marked malware and malware flows
    marked benign, half each, on flows the honest source did not label."""
    rows = read(labels)
    rng = np.random.default_rng(seed)
    honest = set(family_share(rows, family, share, limit, rng))
    honest |= {i for i in range(len(rows)) if rng.random() < honest_share}
    picks = [(i, rows[i]["class"], honest_source) for i in honest]
    if flipped:
        per = flipped // 2
        for cls in ("benign", "malware"):
            cand = [i for i, r in enumerate(rows) if r["class"] == cls and i not in honest]
            chosen = rng.choice(cand, size=min(per, len(cand)), replace=False)
            picks += [(int(i), FLIP[cls], poison_source) for i in chosen]
    write(out, rows, picks)
    return {"honest": len(honest), "flipped": len(picks) - len(honest)}
