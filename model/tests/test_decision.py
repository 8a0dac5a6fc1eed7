"""The decision rule (`nightjar_model.decision`): synthetic logits, numpy only."""

import numpy as np

from nightjar_model import decision as dr


def population(seed=0):
    """Benign flows of two kinds: most plainly benign, 8 % that look like attacks (WebDAV,
    test suites); attack flows moderately attack-like; malware flows strongly malware-like."""
    rng = np.random.default_rng(seed)
    n = 1000
    benign = rng.normal(0, 1, (n, 3)) + [4.0, 0.0, 0.0]
    odd = rng.random(n) < 0.08
    benign[odd] = rng.normal(0, 1, (odd.sum(), 3)) + [0.0, 4.0, 0.0]
    attack = rng.normal(0, 1, (n, 3)) + [0.0, 3.0, 0.0]
    malware = rng.normal(0, 1, (n, 3)) + [0.0, 0.0, 6.0]
    z = np.concatenate([benign, attack, malware])
    y = np.repeat([0, 1, 2], n)
    return z, y


def test_offsets_meet_the_target_and_classes_beat_one_offset():
    z, y = population()
    one = dr.choose_thresholds(z, y, "offset", target=0.02, T=1.0)
    two = dr.choose_thresholds(z, y, "classes", target=0.02, T=1.0)
    assert one["malware_offset"] == 0.0
    for r in (one, two):
        assert r["validation_flag_rate"] <= 0.02
    # A benign offset large enough for the attack-like benign flows also silences
    # malware; shifting malware up wins back malware without flagging more benign flows.
    assert two["malware_offset"] > 0
    assert two["validation_class_recall"] > one["validation_class_recall"] + 0.05


def test_none_and_unknown_modes():
    z, y = population(1)
    none = dr.choose_thresholds(z, y, "none", T=1.0)
    assert none["benign_offset"] == 0.0 and none["malware_offset"] == 0.0
    unk = dr.choose_thresholds(z, y, "unknown", target=0.02, T=1.0)
    assert unk["validation_flag_rate"] <= 0.02 and unk["unknown_below"] > none["unknown_below"]


def test_deployed_offsets_and_unknown():
    z = np.log(np.array([[0.5, 0.3, 0.2], [0.2, 0.45, 0.35], [0.34, 0.33, 0.33]]))
    v, p = dr.deployed(z, 0.0, 0.4)
    assert v.tolist() == [0, 1, dr.UNKNOWN]
    assert np.allclose(p.sum(1), 1)
    # A scalar is the benign offset; a vector shifts each class.
    assert np.allclose(dr.deployed(z, 1.0, 0.0)[1], dr.deployed(z, [1.0, 0.0, 0.0], 0.0)[1])
    v, _ = dr.deployed(z, [0.0, 0.0, np.log(2.0)], 0.0)
    assert v.tolist() == [0, 2, 2]
