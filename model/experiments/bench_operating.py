"""Attack detection on a generated web-attack check at the check's own benign budget: for
each model's metadata, the graph's probabilities (ONNX Runtime, float; the sensor's
preprocessing from the metadata, no decision rule), the attack-against-benign log-odds,
the threshold at 1 % and 5 % of the check's benign requests; prints recall and F1.

    cd model && .venv/bin/python experiments/bench_operating.py hb.npz artifacts/nightjar.json artifacts-real/nightjar.json

`hb.npz`: `dataset` of the check's `nightjar replay --features` lines and labels
(`benches/flood/scenarios/http_bench.toml`).
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model import dataset, export, metrics  # noqa: E402
from nightjar_model.schema import Preprocessing  # noqa: E402


def main(bench, metas):
    hb = dataset.load(Path(bench))
    y = hb["y"]
    for meta in metas:
        m = json.loads(Path(meta).read_text())
        pre = Preprocessing.from_json(m["preprocessing"])
        chars = hb["chars"] if m.get("chars") else None
        p = export.run_ort(Path(meta).parent / m["files"]["float"]["path"],
                           export.feeds(pre, hb["static"], hb["seq"], hb["tokens"], chars=chars))
        s = np.log(p[:, 1] + 1e-30) - np.log(p[:, 0] + 1e-30)
        out = {}
        for share in (0.01, 0.05):
            t = np.quantile(s[y == 0], 1 - share)
            attack = metrics.report(y, (s > t).astype(np.int64))["per_class"]["attack"]
            out[f"at {share:.0%}"] = {"recall": round(attack["recall"], 3), "f1": round(attack["f1"], 3)}
        print(meta, json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
