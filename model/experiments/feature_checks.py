"""Three checks made before building features the issue names, on the labelled real corpus:

1. Knowledge-base prior: the share of TLS flows whose ClientHello the mercury/joy knowledge
   bases know as a common client (`kb_process` in `corpus/features.jsonl`), per source and class.
2. Server responses: the share of HTTP flows with any payload to the client, per source,
   class and scanner family (a response-status feature needs a response).
3. A gradient-boosted tree on the static features alone (scikit-learn), leave-one-source-out:
   TLS/HTTP malware families caught at 1, 2, 5, 10 % of benign flows flagged, the threshold
   read off the pooled held-out benign flows (an oracle, so an upper bound for a static model).

    cd model && .venv/bin/python experiments/feature_checks.py corpus/features.jsonl real.npz
"""

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model.schema import load_schema  # noqa: E402

SCANNERS = ("nikto", "bots_scanners", "honeypots", "drupal")


def lines(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def shares(path):
    to_client = load_schema()["static_features"].index("flow_log_payload_to_client")
    kb, tls, resp, http = Counter(), Counter(), Counter(), Counter()
    for j in lines(path):
        if j["app"] == "tls":
            key = (j["source"], j["class"])
            tls[key] += 1
            kb[key] += bool(j.get("kb_process"))
        elif j["app"] == "http":
            key = (j["source"], j["class"], j["family"] if j["family"] in SCANNERS else "*")
            http[key] += 1
            resp[key] += j["static_features"][to_client] > 0
    print("TLS flows known to the fingerprint knowledge bases")
    for k in sorted(tls):
        print(f"  {k[0]:22} {k[1]:8} {tls[k]:6}  {kb[k] / tls[k]:.2f}")
    print("HTTP flows with a server response")
    for k in sorted(http):
        print(f"  {k[0]:22} {k[1]:8} {k[2]:14} {http[k]:6}  {resp[k] / http[k]:.2f}")


def static_tree(path):
    d = np.load(path, allow_pickle=True)
    x, y, src, fam = d["static"], d["y"], d["source"], d["family"]
    app = np.where(x[:, 0] > 0.5, 0, np.where(x[:, 1] > 0.5, 1, 2))
    score = np.zeros(len(y))
    for s in sorted(set(src)):
        te = src == s
        clf = HistGradientBoostingClassifier(max_iter=200, class_weight="balanced", random_state=0).fit(x[~te], y[~te])
        score[te] = 1 - clf.predict_proba(x[te])[:, 0]
    print("Static-feature tree, leave-one-source-out")
    for a, name in ((0, "tls"), (1, "http")):
        m = app == a
        print(f"  {name}: AUC benign vs malware {roc_auc_score(y[m & (y != 1)] == 2, score[m & (y != 1)]):.3f}")
        for q in (0.01, 0.02, 0.05, 0.10):
            flag = score > np.quantile(score[m & (y == 0)], 1 - q)
            fams = [flag[m & (y == 2) & (fam == f)].mean() for f in set(fam[m & (y == 2)])
                    if (m & (y == 2) & (fam == f)).sum() >= 5]
            print(f"    at {q:.0%} of benign flagged: malware flows {flag[m & (y == 2)].mean():.3f}, "
                  f"families {np.mean(fams):.3f} ({len(fams)})")


if __name__ == "__main__":
    shares(sys.argv[1])
    static_tree(sys.argv[2])
