"""The timing-shortcut check of the model card ("Measured, not shipped"): grouped 5-fold
CV by run with the shipped protocol (`--decision slice`), the packet and record sequence
zeroed for every HTTP flow (real and generated), so that the graph cannot tell real from
generated HTTP by its timing. Prints the per-app figures with the shipped rule (`offset`)
and of the model alone (`none`): (benign flagged, malware families caught, attack
families caught, attack recall).

    cd model && .venv/bin/python experiments/http_without_sequence.py real.npz http_aug.npz
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nightjar_model import dataset  # noqa: E402
from nightjar_model import realtrain as rt  # noqa: E402


def main(data, augment):
    torch.set_num_threads(1)
    d = dataset.with_augmentation(dataset.load(Path(data)), [augment])
    d["seq"][rt.app_of(d) == 1] = 0.0
    cfg = dict(rt.REAL_DEFAULTS, chars=int(d["chars"].shape[1]), augment=True, decision="slice")
    res = rt.pooled(d, rt.cv_splits(d), cfg, "cv, HTTP without sequence", ("offset", "none"))
    out = {}
    for mode in ("offset", "none"):
        h = res["by_mode"][mode]
        out[mode] = {a: (v["benign_flag_rate"], v.get("malware_families", {}).get("mean_caught"),
                         v.get("attack_families", {}).get("mean_caught"), v["per_class"]["attack"]["recall"])
                     for a, v in h["per_app"].items()} | {"macro": h["deployed_macro_f1"], "argmax": h["argmax_macro_f1"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
