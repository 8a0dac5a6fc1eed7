"""Per-deployment calibration (`nightjar_model.calibrate`): the offset search on synthetic
log-probabilities, and the whole command on the committed model with ONNX Runtime
(no torch)."""

import json
from pathlib import Path

import numpy as np
import pytest

from nightjar_model import calibrate as cal
from nightjar_model import decision

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "artifacts" / "nightjar.json"
FIXTURES = ROOT.parent / "sensor" / "tests" / "data" / "fixtures.features.jsonl"


def logp_of(margins):
    """Log-probabilities whose attack-over-benign margin is `margins` (malware far below)."""
    z = np.stack([np.zeros_like(margins), margins, np.full_like(margins, -20.0)], 1)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_the_offset_is_the_smallest_that_meets_the_target():
    rng = np.random.default_rng(3)
    margins = rng.normal(-3.0, 1.5, 2000)
    rule = {"benign_log_offset": 3.0, "malware_log_offset": 0.0, "unknown_below": 0.0}
    new, shares = cal.refit(logp_of(margins), rule, 0.01)
    off = new["benign_log_offset"]
    assert shares["flagged"]["after"] <= 0.01
    assert decision.flag_rate(logp_of(margins), np.zeros(2000, int), [off - 0.05, 0, 0], 0.0) > 0.01
    # Flagged when the attack margin beats the offset: the 99th percentile of margins.
    assert abs(off - np.quantile(margins, 0.99)) < 0.1
    assert shares["flagged"]["before"] == 0.0, "the shipped offset of 3 flagged nothing here"
    assert new["unknown_below"] == 0.0, "never raised"


def test_plainly_benign_traffic_lowers_the_offset_below_zero():
    margins = np.full(500, -8.0)
    rule = {"benign_log_offset": 2.0, "malware_log_offset": 1.0, "unknown_below": 0.0}
    new, shares = cal.refit(logp_of(margins), rule, 0.01)
    assert new["benign_log_offset"] < 0 and shares["flagged"]["after"] == 0.0


def test_unknown_is_lowered_when_the_site_would_be_a_stranger():
    rng = np.random.default_rng(4)
    margins = rng.normal(-1.0, 0.3, 1000)
    rule = {"benign_log_offset": 0.0, "malware_log_offset": 0.0, "unknown_below": 0.9}
    new, shares = cal.refit(logp_of(margins), rule, 0.01)
    assert shares["unknown"]["before"] > 0.5
    assert new["unknown_below"] < 0.9 and shares["unknown"]["after"] <= 0.11
    assert shares["flagged"]["after"] <= 0.01


def test_too_few_flows_for_the_target():
    assert cal.min_flows(0.01) == 200
    assert cal.min_flows(0.1) == 100


def site_lines(n):
    """`n` HTTP feature lines: the HTTP fixture flow with its request's bytes varied."""
    http = next(json.loads(line) for line in open(FIXTURES) if json.loads(line)["app"] == "http")
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        j = dict(http, client_port=10_000 + i)
        chars = list(j["chars"])
        for k in rng.integers(4, max(5, len(chars)), 3):
            chars[k] = int(rng.integers(97, 123))
        j["chars"] = chars
        out.append(json.dumps(j) + "\n")
    return out


def test_the_calibrated_copy_meets_the_target_and_the_model_stays(tmp_path):
    benign = tmp_path / "site.features.jsonl"
    benign.write_text("".join(site_lines(300)))
    shipped = MODEL.read_text()
    rep = cal.calibrate(MODEL, benign, tmp_path / "site", ["http"], 0.05)
    assert MODEL.read_text() == shipped, "the shipped metadata is never rewritten"
    meta = json.loads((tmp_path / "site" / "nightjar.json").read_text())
    assert meta["calibration"]["apps"]["http"]["flows"] == 300
    assert meta["decision"]["http"]["benign_log_offset"] == rep["apps"]["http"]["benign_log_offset"]["after"]
    assert meta["decision"]["tls"] == json.loads(shipped)["decision"]["tls"], "only the asked app changes"
    for f in meta["files"].values():
        assert (tmp_path / "site" / f["path"]).stat().st_size == f["bytes"]
    rows = [json.loads(line) for line in benign.read_text().splitlines()]
    v, *_ = cal.verdicts(meta, tmp_path / "site", rows)
    assert np.isin(v, (1, 2)).mean() <= 0.05
    with pytest.raises(cal.CalibrationError, match="needs at least"):
        cal.calibrate(MODEL, benign, tmp_path / "x", ["http"], 0.001)
    with pytest.raises(cal.CalibrationError, match="needs at least"):
        cal.calibrate(MODEL, benign, tmp_path / "y", ["tls"], 0.05)
