import math

import numpy as np
import pytest
from sklearn import metrics as sk

from arcface_keras.toolkit import evaluation


def _on_circle(degrees):
    radians = np.radians(np.asarray(degrees, dtype="float64"))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def naive_retrieval(embeddings, labels):
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    p1, rp, mapr = [], [], []
    for i in range(len(labels)):
        r = int((labels == labels[i]).sum()) - 1
        if r == 0:
            continue
        others = [j for j in range(len(labels)) if j != i]
        ranked = sorted(others, key=lambda j: -float(unit[i] @ unit[j]))[:r]
        hits = [labels[j] == labels[i] for j in ranked]
        p1.append(hits[0])
        rp.append(sum(hits) / r)
        mapr.append(sum(sum(hits[: k + 1]) / (k + 1) for k in range(r) if hits[k]) / r)
    return np.mean(p1), np.mean(rp), np.mean(mapr)


def test_classification_matches_sklearn(rng):
    labels = rng.integers(0, 4, size=200)
    probabilities = rng.dirichlet(np.ones(4), size=200)
    metrics = evaluation.classification_metrics(labels, probabilities)
    predicted = probabilities.argmax(1)
    assert metrics["test_accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert metrics["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert metrics["macro_precision"] == pytest.approx(sk.precision_score(labels, predicted, average="macro"))
    assert metrics["macro_recall"] == pytest.approx(sk.recall_score(labels, predicted, average="macro"))
    assert np.array(metrics["confusion_matrix"]).sum() == 200
    perfect = evaluation.classification_metrics(labels, np.eye(4)[labels])
    assert perfect["test_accuracy"] == perfect["macro_f1"] == 1.0


def test_many_classes_keep_per_class_numbers_but_no_confusion_matrix(rng):
    from arcface_keras.toolkit import report

    classes = evaluation.CONFUSION_MAX_CLASSES + 1
    labels = np.arange(classes)
    metrics = evaluation.classification_metrics(labels, np.eye(classes)[labels])
    assert metrics["confusion_matrix"] is None and len(metrics["per_class"]["f1"]) == classes
    few = evaluation.classification_metrics(labels[:10] % 3, np.eye(3)[labels[:10] % 3])
    assert np.array(few["confusion_matrix"]).sum() == 10
    angles = dict.fromkeys(("target_angle_mean", "center_angle_min"), 1.0)
    filler = dict.fromkeys(("precision_at_1", "r_precision", "map_at_r", "roc_auc", "eer", "tar_at_far_1e-3"), 0.5)
    text = report.render({**metrics, **filler, "angles": angles}, "many")
    assert f"of the {classes:,} classes: metrics.json" in text and "confusion_matrix.png" not in text


def test_retrieval_worked_example():
    # Query 0: ranking 20°(same) 30°(other) → P@1 1, R-precision 1/2, MAP@R 1/2.
    # Queries 1, 2: nearest is the 30° outsider → P@1 0, R-precision 1/2, MAP@R 1/4.
    # The lone class-1 sample has R = 0 and is skipped.
    embeddings = _on_circle([0, 20, 60, 30])
    metrics = evaluation.retrieval_metrics(embeddings, np.array([0, 0, 0, 1]))
    assert metrics["precision_at_1"] == pytest.approx(1 / 3)
    assert metrics["r_precision"] == pytest.approx(0.5)
    assert metrics["map_at_r"] == pytest.approx(1 / 3)


def test_retrieval_perfect_and_against_naive(rng):
    labels = np.repeat(np.arange(3), 5)
    clusters = np.eye(3)[labels] + 0.01 * rng.normal(size=(15, 3))
    assert evaluation.retrieval_metrics(clusters, labels) == {"precision_at_1": 1.0, "r_precision": 1.0, "map_at_r": 1.0}
    embeddings = rng.normal(size=(60, 5))
    labels = rng.integers(0, 4, size=60)
    got = evaluation.retrieval_metrics(embeddings, labels, chunk=7)
    expected = naive_retrieval(embeddings, labels)
    np.testing.assert_allclose([got["precision_at_1"], got["r_precision"], got["map_at_r"]], expected, atol=1e-12)


def test_verification_worked_example():
    # Same-class pair cosines 0.9, 0.8, 0.3; different-class 0.5, 0.2, 0.1.
    # At threshold 0.5: FAR 1/3, FRR 1/3 → EER 1/3; AUC = 8/9 (one inversion: 0.3 < 0.5).
    cosines = [0.9, 0.8, 0.3, 0.5, 0.2, 0.1]
    embeddings = np.concatenate([[[1.0, 0.0]], _on_circle(np.degrees(np.arccos(cosines)))])
    positives = np.array([[0, 1], [0, 2], [0, 3]])
    negatives = np.array([[0, 4], [0, 5], [0, 6]])
    metrics = evaluation.verification_from_pairs(embeddings, positives, negatives)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["eer"] == pytest.approx(1 / 3)
    assert metrics["tar_at_far_1e-3"] == pytest.approx(2 / 3)  # accepting 0.9 and 0.8 costs no false accept


def test_verification_perfect_and_random(rng):
    labels = np.repeat(np.arange(4), 50)
    clusters = np.eye(4)[labels] + 0.01 * rng.normal(size=(200, 4))
    perfect = evaluation.verification_metrics(clusters, labels, max_pairs=2000)
    assert perfect["roc_auc"] == 1.0 and perfect["eer"] == 0.0 and perfect["tar_at_far_1e-3"] == 1.0
    random = evaluation.verification_metrics(rng.normal(size=(400, 8)), rng.integers(0, 4, size=400), max_pairs=5000)
    assert abs(random["roc_auc"] - 0.5) < 0.05


def test_sampled_pairs_are_right():
    labels = np.repeat(np.arange(5), 20)
    positives, negatives = evaluation.sample_pairs(labels, max_pairs=300)
    assert len(positives) == len(negatives) == 300
    assert (labels[positives[:, 0]] == labels[positives[:, 1]]).all() and (positives[:, 0] != positives[:, 1]).all()
    assert (labels[negatives[:, 0]] != labels[negatives[:, 1]]).all()


def test_angles_on_hand_made_geometry():
    centers = np.eye(3)  # (D, C): orthogonal centers, 90° apart
    embeddings = np.array([[1.0, 0, 0], [0, 1.0, 0], [math.cos(0.3), math.sin(0.3), 0]])
    labels = np.array([0, 1, 0])
    stats = evaluation.angular_statistics(embeddings, labels, centers)
    own, other = evaluation.target_angles(embeddings, labels, centers)
    np.testing.assert_allclose(own, [0, 0, math.degrees(0.3)], atol=1e-6)
    np.testing.assert_allclose(other, [90, 90, 90 - math.degrees(0.3)], atol=1e-6)
    assert stats["center_angle_min"] == pytest.approx(90) and stats["center_angle_mean"] == pytest.approx(90)
    assert stats["margin_achieved_mean"] == pytest.approx((90 + 90 + 90 - 2 * math.degrees(0.3)) / 3)


def test_angles_with_sub_centers():
    centers = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])  # class 0: x, y; class 1: y, x
    centers[:, 2:] = [[-1.0, 0.0], [0.0, -1.0]]  # class 1: -x, -y
    own, other = evaluation.target_angles(np.array([[0.0, 1.0]]), np.array([0]), centers, sub_centers=2)
    assert own[0] == pytest.approx(0.0) and other[0] == pytest.approx(90.0)


def test_full_evaluation_keys(rng):
    labels = np.repeat(np.arange(3), 30)
    embeddings = np.eye(3)[labels] + 0.3 * rng.normal(size=(90, 3))
    metrics, arrays = evaluation.full_evaluation(labels, np.eye(3)[labels], embeddings, np.eye(3))
    for key in ("precision_at_1", "r_precision", "map_at_r", "roc_auc", "eer", "tar_at_far_1e-3", "macro_f1", "angles"):
        assert key in metrics
    assert arrays["target_angles"].shape == (90,)


def test_center_cosines_detects_collapse():
    orthogonal = np.eye(6)[:, :4]
    assert evaluation.center_cosines(orthogonal) == {"mean": 0.0, "max": 0.0}
    collapsed = np.ones((6, 4)) + 1e-3 * np.random.default_rng(0).normal(size=(6, 4))
    result = evaluation.center_cosines(collapsed * [1, 2, 3, 4])  # column norms do not matter
    assert result["mean"] > 0.99 and result["max"] <= 1.0 + 1e-12


def test_verification_pairs_are_found_with_many_classes():
    from arcface_keras.toolkit.evaluation import sample_pairs

    labels = np.repeat(np.arange(1000), 20)  # 190,000 same-class pairs exist
    positives, negatives = sample_pairs(labels, max_pairs=100_000)
    assert len(positives) == 100_000 and len(negatives) == 100_000
    assert (labels[positives[:, 0]] == labels[positives[:, 1]]).all()
    assert (labels[negatives[:, 0]] != labels[negatives[:, 1]]).all()
    assert len({tuple(p) for p in positives.tolist()}) == 100_000 and (positives[:, 0] < positives[:, 1]).all()
    per_class = np.bincount(labels[positives[:, 0]], minlength=1000)
    assert per_class.min() >= 99 and per_class.max() <= 101  # spread over every class
    few, _ = sample_pairs(np.repeat(np.arange(3), 4), max_pairs=100)
    assert len(few) == 18  # every pair that exists: 3 × (4·3/2)


def test_two_class_metrics_have_no_top_k():
    from arcface_keras.toolkit.evaluation import classification_metrics

    metrics = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    assert metrics["test_accuracy"] == pytest.approx(2 / 3) and not any(k.startswith("top_") for k in metrics)
