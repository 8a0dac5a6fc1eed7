"""Per-deployment calibration measured on the generated web-attack check
(`benches/flood/scenarios/http_bench.toml`: 1,982 shop requests, 2,018 shop-shaped
attacks, from the `holdout` part of every request corpus): the shop's benign requests
split in two by client (FNV of client address and port); `calibrate` refits the HTTP
benign offset on one half (the site's own benign traffic, as an operator would record
it), and both models' verdicts are scored on the other half and every attack.

    cd model && .venv/bin/python experiments/site_calibration.py hb.features.jsonl http_bench.csv \\
        artifacts/nightjar.json [more metadata ...]

Generated traffic on both sides: it says what the calibration does to a rule, not what
the model does on a real web server.
"""

import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model import calibrate, metrics  # noqa: E402


def fnv(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def main(features, labels, metas):
    lab = {}
    with open(labels) as f:
        for r in csv.DictReader(f):
            lab[(r["client_ip"], int(r["client_port"]), r["server_ip"], int(r["server_port"]))] = r["class"]
    rows = [json.loads(line) for line in open(features)]
    cls = {"benign": 0, "attack": 1, "malware": 2}
    y = np.array([cls[lab[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])]] for r in rows])
    half = np.array([fnv(f"{r['client_ip']}:{r['client_port']}") % 2 for r in rows])
    cal = [r for r, c, h in zip(rows, y, half) if c == 0 and h == 0]
    ev = np.array([not (c == 0 and h == 0) for c, h in zip(y, half)])
    print(f"{len(rows)} flows: {len(cal)} shop requests to calibrate on, {int(((y == 0) & ev).sum())} to test, "
          f"{int((y == 1).sum())} attacks")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        benign = Path(tmp) / "site-benign.features.jsonl"
        benign.write_text("".join(json.dumps(r) + "\n" for r in cal))
        for meta_path in map(Path, metas):
            site = Path(tmp) / ("site-" + meta_path.parent.name)
            rep = calibrate.calibrate(meta_path, benign, site, ["http"], 0.01)
            for name, mp in (("as shipped", meta_path), ("calibrated", site / meta_path.name)):
                meta = json.loads(mp.read_text())
                v, *_ = calibrate.verdicts(meta, mp.parent, [r for r, e in zip(rows, ev) if e])
                ye = y[ev]
                att = metrics.report(ye, np.where(v == 1, 1, 0))["per_class"]["attack"]
                res = {"benign_flagged": round(float(np.isin(v[ye == 0], (1, 2)).mean()), 4),
                       "benign_unknown": round(float((v[ye == 0] == 3).mean()), 4),
                       "attacks_flagged": round(float(np.isin(v[ye == 1], (1, 2)).mean()), 4),
                       "attack_recall": round(att["recall"], 4), "attack_precision": round(att["precision"], 4),
                       "attack_f1": round(att["f1"], 4),
                       "http_benign_offset": meta["decision"]["http"]["benign_log_offset"]}
                out[f"{meta['model_version']} {name}"] = res
                print(f"{meta['model_version']:22} {name:10} offset {res['http_benign_offset']:.2f}: shop flagged "
                      f"{res['benign_flagged']:.2%} (unknown {res['benign_unknown']:.1%}), attacks flagged {res['attacks_flagged']:.2%}, "
                      f"attack P {res['attack_precision']:.3f} R {res['attack_recall']:.3f} F1 {res['attack_f1']:.3f}")
            out[f"{rep['model_version']} calibration"] = rep["apps"]["http"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
