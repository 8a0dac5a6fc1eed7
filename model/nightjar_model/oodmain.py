"""`python -m nightjar_model ood`: fits the novelty block (`ood.py`) of an exported model on
the flows it was fitted on and writes it into the model's metadata, with the parity
fixture's expected verdicts and novelty distances brought up to date (numpy and ONNX
Runtime only; `train-real` calls `attach` after its export)."""

import json
from pathlib import Path

import numpy as np

from . import decision, export, ood
from .metrics import VERDICTS
from .schema import Preprocessing


def outputs(model_dir: Path, meta, static, seq, tokens, chars, variant="float"):
    """(probabilities, embeddings) of the model's `variant` graph."""
    pre = Preprocessing.from_json(meta["preprocessing"])
    width = meta.get("chars", 0)
    f = export.feeds(pre, static, seq, tokens, batch=256, chars=chars if width else None)
    return export.run_ort(model_dir / meta["files"][variant]["path"], f, ("probs", "embedding"))


def fixture_arrays(fixture, width):
    """The parity fixture's flows as (static, seq, tokens, chars) model inputs."""
    flows = fixture["flows"]
    static = np.asarray([f["static_features"] for f in flows], dtype=np.float32)
    seq = np.asarray([[p + r for p, r in zip(f["packets"], f["records"])] for f in flows], dtype=np.float32)
    tokens = [f["url_tokens"] for f in flows]
    chars = None
    if width:
        chars = np.zeros((len(flows), width), dtype=np.int64)
        for i, f in enumerate(flows):
            b = f["chars"][:width]
            chars[i, :len(b)] = np.asarray(b, dtype=np.int64) + 1
    return static, seq, tokens, chars


def attach(model: Path, d, fit_idx, held_idx, fitted_on, quantile=ood.QUANTILE):
    """Writes the `ood` block into `model` (metadata JSON): fitted on the embeddings of
    `fit_idx` of arrays `d`, its threshold from `held_idx`; updates `parity.json` beside it
    when present. Returns the block's report (without its matrices)."""
    meta = json.loads(model.read_text())
    width = meta.get("chars", 0)
    pick = lambda idx: (d["static"][idx], d["seq"][idx], [d["tokens"][i] for i in idx], export.chars_of(d, idx, width))  # noqa: E731
    _, fit_emb = outputs(model.parent, meta, *pick(fit_idx))
    _, held_emb = outputs(model.parent, meta, *pick(held_idx))
    block = ood.block(fit_emb, d["y"][fit_idx], held_emb, quantile)
    block["fitted_on"] = fitted_on
    meta["ood"] = block
    held_novel = ood.novel(block, held_emb)
    report = {k: v for k, v in block.items() if k not in ("class_means", "precision")}
    report["held_out_novel_share"] = round(float(held_novel.mean()), 4)
    model.write_text(json.dumps(meta, indent=1) + "\n")
    refresh_parity(model)
    return report


def refresh_parity(model: Path):
    """The parity fixture beside `model` (when present): its expected verdicts under the
    metadata's current rule and novelty block, and the novelty distances (float, int8)."""
    parity = model.parent / "parity.json"
    if not parity.exists():
        return
    meta = json.loads(model.read_text())
    fx = json.loads(parity.read_text())
    static, seq, tokens, chars = fixture_arrays(fx, meta.get("chars", 0))
    apps = decision.apps_of(static)
    fx["expected_verdicts"] = {}
    fx.pop("expected_novelty", None)
    for variant in ("float", "int8"):
        probs, emb = outputs(model.parent, meta, static, seq, tokens, chars, variant)
        v, _ = decision.sensor_verdicts(meta, probs, apps, emb)
        fx["expected_verdicts"][variant] = [VERDICTS[k] for k in v]
        if meta.get("ood"):
            fx.setdefault("expected_novelty", {})[variant] = [
                round(float(x), 4) for x in ood.distance(emb, meta["ood"]["class_means"], meta["ood"]["precision"])]
    parity.write_text(json.dumps(fx) + "\n")


def run(a):
    """The CLI: the final fit's flows from `train-real`'s `arrays.npz` (every real run but the
    calibration slice, plus the augmentation), the threshold from the calibration slice."""
    from . import dataset

    d = dataset.with_augmentation(dataset.load(Path(a.data)), a.augment)
    arrays = np.load(a.arrays)
    held = arrays["final/cal_idx"]
    fit_idx = np.setdiff1d(np.arange(len(d["y"])), held)
    report = attach(Path(a.model), d, fit_idx, held,
                    f"{Path(a.data).name} (+{', '.join(Path(p).name for p in a.augment or [])}) without the final fit's "
                    f"calibration slice ({len(held)} flows, the threshold's)", a.quantile)
    print(json.dumps(report, indent=1))
    return report
