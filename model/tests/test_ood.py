"""Novelty (`nightjar_model.ood`) and the benign-only `unknown` it drives: synthetic
embeddings, numpy only."""

import numpy as np

from nightjar_model import decision as dr
from nightjar_model import ood


def clusters(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    cov = np.diag([1.0, 4.0, 0.25, 1.0])
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], dtype=float)
    y = np.repeat([0, 1, 2], n)
    emb = np.concatenate([rng.multivariate_normal(c, cov, n) for c in centres])
    return emb, y


def test_distance_is_the_nearest_class_mahalanobis():
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    precision = np.diag([1.0, 4.0])
    d = ood.distance(np.array([[0.0, 1.0], [9.0, 0.0]]), means, precision)
    assert np.allclose(d, [4.0, 1.0])


def test_threshold_leaves_the_quantile_of_like_flows_novel_and_far_flows_all():
    emb, y = clusters()
    held, _ = clusters(seed=1)
    block = ood.block(emb, y, held, quantile=0.99)
    assert len(block["class_means"]) == 3 and len(block["precision"]) == 4
    like, _ = clusters(seed=2)
    share = ood.novel(block, like).mean()
    assert 0.003 < share < 0.03, share
    rng = np.random.default_rng(3)
    far = rng.normal(0, 1, (500, 4)) + [20.0, 20.0, 0, 0]
    assert ood.novel(block, far).all()
    # Scale matters per direction: 3 sd along the narrow axis is novel, along the wide one not.
    assert ood.distance(np.array([[0, 0, 1.5, 0]]), block["class_means"], block["precision"])[0] > \
        ood.distance(np.array([[0, 1.5, 0, 0]]), block["class_means"], block["precision"])[0]


def test_no_block_means_nothing_is_novel():
    assert not ood.novel(None, np.zeros((3, 4))).any()
    assert ood.novel({}, np.zeros((3, 4))).shape == (3,)


def test_novel_benign_verdicts_become_unknown_and_alerts_stay():
    emb, y = clusters()
    block = ood.block(emb, y, clusters(seed=1)[0])
    meta = {"unknown_below": 0.0, "ood": block,
            "decision": {"tls": {"benign_log_offset": 0.0, "unknown_below": 0.0, "unknown_scope": "benign"}}}
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    e = np.array([[0.0, 0, 0, 0], [30.0, 30, 0, 0], [30.0, 30, 0, 0]])
    v, _ = dr.sensor_verdicts(meta, probs, np.zeros(3, dtype=int), e)
    assert v.tolist() == [0, dr.UNKNOWN, 2]
    # Without embeddings (or without the block) the rule is the probabilities' alone.
    assert dr.sensor_verdicts(meta, probs, np.zeros(3, dtype=int))[0].tolist() == [0, 0, 2]
