import numpy as np
import pytest

from vitrina.runtime.metrics import retrieval_metrics


def reference(queries, gallery, ql, gl, targets):
    aps, rrs, p10, a1, a10 = [], [], [], [], []
    for q in range(len(queries)):
        sims = gallery @ queries[q]
        order = sorted(range(len(gallery)), key=lambda j: -sims[j])
        rel = [gl[j] == ql[q] for j in order]
        hits, precisions = 0, []
        for rank, r in enumerate(rel, start=1):
            if r:
                hits += 1
                precisions.append(hits / rank)
        aps.append(np.mean(precisions))
        rrs.append(1.0 / (rel.index(True) + 1))
        p10.append(np.mean(rel[:10]))
        rank_own = order.index(targets[q]) + 1
        a1.append(rank_own <= 1)
        a10.append(rank_own <= 10)
    return np.mean(aps), np.mean(rrs), np.mean(p10), np.mean(a1), np.mean(a10)


def test_matches_a_plain_reference_on_random_data():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(120, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    gl = rng.integers(0, 4, size=120)
    targets = rng.integers(0, 120, size=300)
    queries = gallery[targets] + rng.normal(scale=0.6, size=(300, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ql = gl[targets]
    m = retrieval_metrics(queries, gallery, ql, gl, targets)
    expected = reference(queries, gallery, ql, gl, targets)
    assert (m.map, m.mrr, m.p_at_10, m.acc_at_1, m.acc_at_10) == pytest.approx(expected, abs=1e-9)
    assert 0.0 < m.acc_at_1 < m.acc_at_10 < 1.0


def test_hand_worked_ranking():
    # one query along x; gallery ranked: [relevant, other, relevant, other]
    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]], dtype=np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    m = retrieval_metrics(
        np.array([[1.0, 0.0]], np.float32), gallery, np.array([1]), np.array([1, 0, 1, 0]), np.array([2])
    )
    assert m.map == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m.mrr == 1.0 and m.p_at_1 == 1.0 and m.p_at_5 == pytest.approx(0.5)
    assert m.acc_at_1 == 0.0 and m.acc_at_10 == 1.0


def test_precision_recall_curve_hand_worked():
    from vitrina.runtime.metrics import precision_recall_curve

    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]], dtype=np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    recall, precision = precision_recall_curve(
        np.array([[1.0, 0.0]], np.float32), gallery, np.array([1]), np.array([1, 0, 1, 0])
    )
    # ranking: relevant, other, relevant, other → recall 0.5 at precision 1, recall 1 at precision 2/3
    assert recall[0] == 0.0 and recall[-1] == 1.0
    assert precision[:6] == pytest.approx([1.0] * 6)
    assert precision[6:] == pytest.approx([2 / 3] * 5)
