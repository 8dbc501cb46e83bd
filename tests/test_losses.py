import keras
import numpy as np
import pytest

from arcface_keras.losses import TripletLoss, pairwise_distances


def naive_distances(x, distance):
    x = np.asarray(x, "float64")
    n = len(x)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if distance == "angular":
                d[i, j] = max(1 - x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]), 0.0)
            else:
                squared = float(((x[i] - x[j]) ** 2).sum())
                d[i, j] = squared if distance == "squared-l2" else np.sqrt(squared)
    return d


def naive_semi_hard(labels, x, margin, distance):
    """Addons' TripletSemiHardLoss, one anchor-positive pair at a time."""
    d = naive_distances(x, distance)
    total, pairs = 0.0, 0
    for a in range(len(labels)):
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [d[a, n] for n in negatives if d[a, n] > d[a, p]]
            if farther:
                negative = min(farther)
            else:  # Addons: the farthest negative (its masked max; the row minimum 0 if none)
                negative = max([d[a, n] for n in negatives], default=0.0)
            total += max(margin + d[a, p] - negative, 0.0)
            pairs += 1
    return total / pairs


def naive_hard(labels, x, margin, distance):
    d = naive_distances(x, distance)
    losses = []
    for a in range(len(labels)):
        positives = [d[a, p] for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [d[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
        hardest_positive = max(positives) if positives else 0.0  # Addons' masked max of an empty row: row minimum 0
        hardest_negative = min(negatives) if negatives else d[a].max()
        losses.append(max(hardest_positive - hardest_negative + margin, 0.0))
    return np.mean(losses)


@pytest.mark.parametrize("distance", ["squared-l2", "l2", "angular"])
def test_pairwise_distances(distance, rng):
    x = rng.normal(size=(9, 4)).astype("float32")
    np.testing.assert_allclose(pairwise_distances(x, distance).numpy(), naive_distances(x, distance), atol=2e-5)


@pytest.mark.parametrize("distance", ["squared-l2", "l2", "angular"])
@pytest.mark.parametrize("mining", ["semi-hard", "hard"])
@pytest.mark.parametrize("trial", range(4))
def test_triplet_matches_naive_addons_semantics(distance, mining, trial):
    rng = np.random.default_rng(trial)
    labels = rng.integers(0, 3, size=12)
    x = rng.normal(size=(12, 5)).astype("float32")
    margin = [1.0, 0.2, 0.5, 2.0][trial]
    naive = (naive_semi_hard if mining == "semi-hard" else naive_hard)(labels, x, margin, distance)
    got = float(TripletLoss(margin, mining, distance)(labels, x))
    assert got == pytest.approx(naive, abs=1e-5)


def test_batches_where_anchors_lack_a_semi_hard_negative():
    # Class 0 sits between the class 1 points: every negative is closer than
    # the far positive, so those pairs fall back to the farthest negative.
    x = np.array([[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]], "float32")
    labels = np.array([0, 0, 1, 1, 1])
    for distance in ("squared-l2", "l2"):
        expected = naive_semi_hard(labels, x, 1.0, distance)
        assert float(TripletLoss(1.0, "semi-hard", distance)(labels, x)) == pytest.approx(expected, abs=1e-5)


def test_triplet_gradients_finite_with_duplicates(rng):
    import tensorflow as tf

    x = tf.Variable(np.repeat(rng.normal(size=(3, 4)), 2, axis=0).astype("float32"))  # exact duplicates: zero distances
    labels = np.array([0, 0, 1, 1, 2, 2])
    for distance in ("squared-l2", "l2", "angular"):
        with tf.GradientTape() as tape:
            loss = TripletLoss(distance=distance)(labels, x)
        assert np.isfinite(tape.gradient(loss, x).numpy()).all()


def test_config_round_trip_and_bad_arguments():
    loss = TripletLoss(0.3, "hard", "angular")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (clone.margin, clone.mining, clone.distance) == (0.3, "hard", "angular")
    with pytest.raises(ValueError, match="mining='easy'"):
        TripletLoss(mining="easy")
    with pytest.raises(ValueError, match="distance='cosine'"):
        TripletLoss(distance="cosine")
    with pytest.raises(ValueError, match="margin=-1"):
        TripletLoss(margin=-1)
