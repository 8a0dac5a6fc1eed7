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


def test_benign_scope_never_hides_an_alert():
    z = np.log(np.array([[0.45, 0.35, 0.2], [0.2, 0.42, 0.38], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]]))
    every, _ = dr.deployed(z, 0.0, 0.5, "all")
    benign, _ = dr.deployed(z, 0.0, 0.5, "benign")
    assert every.tolist() == [dr.UNKNOWN, dr.UNKNOWN, dr.UNKNOWN, 0]
    # A weak benign verdict is still `unknown`; weak alerts stay alerts.
    assert benign.tolist() == [dr.UNKNOWN, 1, 2, 0]
    # Per-flow scope: True = only benign verdicts may become unknown.
    mixed, _ = dr.deployed(z, 0.0, 0.5, np.array([False, True, False, True]))
    assert mixed.tolist() == [dr.UNKNOWN, 1, dr.UNKNOWN, 0]


def test_flag_mode_meets_the_target_with_the_offset_alone():
    z, y = population(2)
    flag = dr.choose_thresholds(z, y, "flag", target=0.02, T=1.0)
    off = dr.choose_thresholds(z, y, "offset", target=0.02, T=1.0)
    assert flag["unknown_scope"] == "benign" and off["unknown_scope"] == "all"
    assert flag["validation_flag_rate"] <= 0.02
    # With u = 0 the offset alone flags at most the target ...
    assert dr.flag_rate(z, y, [flag["benign_offset"], 0, 0], 0.0) <= 0.02
    # ... and no non-benign flow the offset leaves flagged becomes unknown.
    v, _ = dr.deployed(z, [flag["benign_offset"], 0, 0], flag["unknown_below"], "benign")
    v0, _ = dr.deployed(z, [flag["benign_offset"], 0, 0], 0.0)
    assert np.array_equal(v[v0 > 0], v0[v0 > 0])
    assert flag["validation_class_recall"] >= off["validation_class_recall"]


def test_sensor_verdicts_read_the_scope():
    probs = np.array([[0.45, 0.35, 0.2], [0.2, 0.42, 0.38]])
    apps = np.array([0, 0])
    meta = {"unknown_below": 0.5, "decision": {"tls": {"benign_log_offset": 0.0, "unknown_below": 0.5}}}
    assert dr.sensor_verdicts(meta, probs, apps)[0].tolist() == [dr.UNKNOWN, dr.UNKNOWN]
    meta["decision"]["tls"]["unknown_scope"] = "benign"
    assert dr.sensor_verdicts(meta, probs, apps)[0].tolist() == [dr.UNKNOWN, 1]


def test_flag_classes_keeps_alerts_and_shifts_malware():
    z, y = population(3)
    fc = dr.choose_thresholds(z, y, "flag-classes", target=0.02, T=1.0)
    f = dr.choose_thresholds(z, y, "flag", target=0.02, T=1.0)
    assert fc["unknown_scope"] == "benign" and fc["validation_flag_rate"] <= 0.02
    assert fc["validation_class_recall"] >= f["validation_class_recall"]
    # As in `classes`: the attack-like benign flows set the benign offset, malware is shifted up.
    assert fc["malware_offset"] > 0


def test_benign_scope_spends_the_flag_budget_on_unknown_too():
    z, y = population(4)
    for mode in ("flag", "flag-classes"):
        r = dr.choose_thresholds(z, y, mode, target=0.02, T=1.0)
        v, _ = dr.deployed(z, [r["benign_offset"], 0, r["malware_offset"]], r["unknown_below"], "benign")
        b = v[y == 0]
        assert (b == dr.UNKNOWN).mean() <= 0.02 and np.isin(b, (1, 2)).mean() <= 0.02
        # The largest such threshold: a little higher and the budget is overspent.
        v, _ = dr.deployed(z, [r["benign_offset"], 0, r["malware_offset"]], r["unknown_below"] + 1e-3, "benign")
        assert (v[y == 0] == dr.UNKNOWN).mean() > 0.02
