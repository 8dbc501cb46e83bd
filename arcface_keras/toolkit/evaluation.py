"""Metrics computed from labels, predictions and embeddings.

- classification: accuracy, top-k, per-class and macro precision/recall/F1,
  confusion matrix (scikit-learn);
- angles between embeddings and class centers, and between centers;
- retrieval with cosine similarity: precision@1, R-precision, MAP@R (the
  definitions of pytorch-metric-learning's AccuracyCalculator);
- verification on same/different pairs: ROC, AUC, EER, TAR at FAR = 1e-3.
"""

import numpy as np
from sklearn import metrics as sk
from sklearn.preprocessing import normalize


def classification_metrics(y_true, probabilities, num_classes=None):
    """Accuracy, top-k accuracy, macro and per-class precision/recall/F1.

    Args:
        y_true: integer labels (N,).
        probabilities: class probabilities (N, C).
        num_classes: C; defaults to the width of `probabilities`.

    Returns:
        A JSON-ready dict.
    """
    y_true = np.asarray(y_true).reshape(-1)
    probabilities = np.asarray(probabilities)
    num_classes = num_classes or probabilities.shape[1]
    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(num_classes)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    result = {"test_accuracy": float(sk.accuracy_score(y_true, y_pred))}
    top_k = min(5, num_classes - 1)
    if top_k >= 2:  # with two classes top-k is top-1 or trivially 1
        result[f"top_{top_k}_accuracy"] = float(sk.top_k_accuracy_score(y_true, probabilities, k=top_k, labels=labels))
    return {
        **result,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.tolist(),
        },
        # C × C counts: kept up to CONFUSION_MAX_CLASSES (10,000 classes would be 10^8 numbers).
        "confusion_matrix": (sk.confusion_matrix(y_true, y_pred, labels=labels).tolist()
                             if num_classes <= CONFUSION_MAX_CLASSES else None),
    }


CONFUSION_MAX_CLASSES = 200


def _unit(x, axis=-1):
    """Rows (axis −1) or columns (axis 0) scaled to unit L2 norm; zero vectors stay zero."""
    return normalize(np.asarray(x, dtype="float64"), axis=1 if axis in (-1, 1) else 0)


def _angle(cosine):
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def center_cosines(centers):
    """Mean and max cosine between distinct class centers (columns of a (D, C) kernel).

    Near 1 means the centers have collapsed onto one direction; 0 is orthogonal.
    """
    unit = _unit(np.asarray(centers, dtype="float64"), axis=0)
    cosines = unit.T @ unit
    off_diagonal = cosines[~np.eye(len(cosines), dtype=bool)]
    return {"mean": float(off_diagonal.mean()), "max": float(off_diagonal.max())}


def target_angles(embeddings, labels, centers, sub_centers=1):
    """Per sample: degrees to its own center and to the nearest other class's.

    Args:
        embeddings: (N, D).
        labels: (N,) integer classes.
        centers: (D, C·K) class centers, columns as in `ArcMarginLayer.kernel`.
        sub_centers: K. Defaults to `1`.

    Returns:
        ``(own, nearest_other)``, two (N,) arrays of degrees.
    """
    cosines = _unit(embeddings) @ _unit(centers, axis=0)
    cosines = cosines.reshape(len(cosines), -1, sub_centers).max(axis=-1)  # (N, C)
    rows = np.arange(len(labels))
    own = cosines[rows, labels]
    cosines[rows, labels] = -np.inf
    return _angle(own), _angle(cosines.max(axis=1))


def angular_statistics(embeddings, labels, centers, sub_centers=1):
    """Angles to own center, between centers, and the margin achieved (degrees)."""
    own, other = target_angles(embeddings, labels, centers, sub_centers)
    class_centers = _unit(centers, axis=0)
    between = _angle(class_centers.T @ class_centers)
    num_columns = between.shape[0]
    same_class = np.arange(num_columns)[:, None] // sub_centers == np.arange(num_columns)[None, :] // sub_centers
    between = between[~same_class]
    achieved = other - own
    return {
        "target_angle_mean": float(own.mean()),
        "target_angle_median": float(np.median(own)),
        "target_angle_p95": float(np.percentile(own, 95)),
        "center_angle_min": float(between.min()),
        "center_angle_mean": float(between.mean()),
        "margin_achieved_mean": float(achieved.mean()),
        "margin_achieved_median": float(np.median(achieved)),
        "margin_achieved_p5": float(np.percentile(achieved, 5)),
    }


def retrieval_metrics(embeddings, labels, chunk=1024):
    """Leave-one-out retrieval by cosine similarity over the set itself.

    For each query, R is the number of other samples of its class:
    precision@1 is whether the nearest neighbour shares its class;
    R-precision the share of its class among the R nearest; MAP@R the mean
    over i ≤ R of precision@i at the ranks i that hold its class, divided by R.
    Queries whose class has no other sample are skipped.
    """
    unit = _unit(embeddings).astype("float32")
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    r_all = counts[labels] - 1
    valid = r_all > 0
    max_r = int(r_all.max())
    p_at_1, r_precision, map_at_r = [], [], []
    for start in range(0, len(unit), chunk):
        similarity = unit[start : start + chunk] @ unit.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf  # never retrieve yourself
        k = min(max_r, similarity.shape[1] - 1)
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
        ranked = np.take_along_axis(top, order, axis=1)
        hits = labels[ranked] == labels[start : start + chunk, None]
        for hit, r, ok in zip(hits, r_all[start : start + chunk], valid[start : start + chunk]):
            if not ok:
                continue
            hit = hit[:r]
            p_at_1.append(hit[0])
            r_precision.append(hit.mean())
            precision_at_i = np.cumsum(hit) / np.arange(1, r + 1)
            map_at_r.append((precision_at_i * hit).sum() / r)
    return {
        "precision_at_1": float(np.mean(p_at_1)),
        "r_precision": float(np.mean(r_precision)),
        "map_at_r": float(np.mean(map_at_r)),
    }


def sample_pairs(labels, max_pairs=100_000, seed=0):
    """Up to `max_pairs` distinct same-class pairs and as many different-class pairs.

    Same-class pairs are drawn per class, in proportion to the pairs each
    class has (n_c·(n_c − 1)/2), so `max_pairs` of them are found whenever
    that many exist, however many classes there are (uniform random pairs
    find about N²/C of them: few with many classes). Different-class pairs
    are uniform random pairs of different labels. Pairs are index pairs
    (i, j) with i < j.

    Returns:
        ``(positives, negatives)``, two (P, 2) int64 arrays.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    available = np.array([len(m) * (len(m) - 1) // 2 for m in members], dtype="int64")
    total = int(available.sum())
    counts = available if total <= max_pairs else _largest_remainder(available, max_pairs)
    positives = [_pairs_within(m, int(k), rng) for m, k in zip(members, counts) if k > 0]
    positives = np.concatenate(positives) if positives else np.zeros((0, 2), dtype="int64")
    negatives = _different_pairs(labels, max_pairs, rng)
    return positives, negatives


def _largest_remainder(weights, total):
    """Integer counts ≤ `weights` summing to `total`, proportional to `weights`."""
    quotas = weights * (total / weights.sum())
    counts = np.minimum(np.floor(quotas).astype("int64"), weights)
    for index in np.argsort(counts - quotas):
        if counts.sum() >= total:
            break
        if counts[index] < weights[index]:
            counts[index] += 1
    return counts


def _pairs_within(members, count, rng):
    """`count` distinct pairs of `members`, drawn uniformly (i < j)."""
    n = len(members)
    chosen = rng.choice(n * (n - 1) // 2, size=count, replace=False)
    # Pair index k ↦ (i, j), j > i, enumerating row by row of the upper triangle.
    i = (n - 2 - np.floor(np.sqrt(-8 * chosen + 4 * n * (n - 1) - 7) / 2.0 - 0.5)).astype("int64")
    j = (chosen + i + 1 - n * (n - 1) // 2 + (n - i) * ((n - i) - 1) // 2).astype("int64")
    return np.stack([members[i], members[j]], axis=1)


def _different_pairs(labels, count, rng):
    """Up to `count` distinct index pairs (i < j) with different labels, uniform:
    all of them when there are no more than `count`."""
    n = len(labels)
    sizes = np.bincount(np.unique(labels, return_inverse=True)[1])
    available = (n * n - int((sizes.astype("int64") ** 2).sum())) // 2
    if available <= count:
        first, second = np.triu_indices(n, 1)
        keep = labels[first] != labels[second]
        return np.stack([first[keep], second[keep]], axis=1).astype("int64")
    keys = np.zeros(0, dtype="int64")
    while len(keys) < count:
        first, second = rng.integers(0, n, size=(2, 2 * count))
        low, high = np.minimum(first, second), np.maximum(first, second)
        keep = labels[low] != labels[high]
        keys = np.unique(np.concatenate([keys, low[keep] * n + high[keep]]))
    keys = rng.permutation(keys)[:count]
    return np.stack([keys // n, keys % n], axis=1).astype("int64")


def verification_metrics(embeddings, labels, max_pairs=100_000, seed=0):
    """ROC of "same class?" decided by cosine similarity of sampled pairs.

    Returns AUC, equal error rate, TAR at FAR = 1e-3, and the ROC curve.
    """
    positives, negatives = sample_pairs(labels, max_pairs, seed)
    return verification_from_pairs(embeddings, positives, negatives)


def verification_from_pairs(embeddings, positives, negatives):
    unit = _unit(embeddings)
    pairs = np.concatenate([positives, negatives])
    scores = np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])
    truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    return {**verification_from_scores(scores, truth),
            "pairs": {"same": int(len(positives)), "different": int(len(negatives))}}


def verification_from_scores(scores, same):
    """ROC AUC, EER, TAR at FAR 1e-3 and the ROC of "same?" decided by `scores`."""
    far, tar, _ = sk.roc_curve(same, scores)
    frr = 1.0 - tar
    crossing = int(np.argmin(np.abs(far - frr)))
    allowed = far <= 1e-3
    return {
        "roc_auc": float(sk.roc_auc_score(same, scores)),
        "eer": float((far[crossing] + frr[crossing]) / 2),
        "tar_at_far_1e-3": float(tar[allowed].max()) if allowed.any() else 0.0,
        "roc": {"far": far, "tar": tar},
    }


CALIBRATION_FARS = (1e-2, 1e-3, 1e-4)


def calibrate(embeddings, labels, fars=CALIBRATION_FARS, max_pairs=100_000, seed=0):
    """Cosine thresholds of "same class?" at the EER and at each false-accept rate.

    From `sample_pairs` of (validation) embeddings: the threshold at FAR f
    accepts (score ≥ threshold) at most f of the different-class pairs. A
    rate needs at least 1/f different-class pairs; with fewer its threshold
    is None. Returns ``{"thresholds": {...}, "pairs": {...}}``.
    """
    positives, negatives = sample_pairs(labels, max_pairs, seed)
    unit = _unit(embeddings)
    same = np.einsum("ij,ij->i", unit[positives[:, 0]], unit[positives[:, 1]])
    different = np.sort(np.einsum("ij,ij->i", unit[negatives[:, 0]], unit[negatives[:, 1]]))[::-1]
    thresholds = {}
    if len(same) and len(different):
        truth = np.concatenate([np.ones(len(same)), np.zeros(len(different))])
        far, tar, cuts = sk.roc_curve(truth, np.concatenate([same, different]))
        crossing = int(np.argmin(np.abs(far - (1.0 - tar))))
        thresholds["eer"] = float(min(cuts[crossing], 1.0))
    for rate in fars:
        key = f"far_{rate:.0e}".replace("e-0", "e-")
        if len(different) * rate < 1:
            thresholds[key] = None
            continue
        allowed = int(np.floor(rate * len(different)))  # the top `allowed` scores are accepted
        above = different[allowed - 1] if allowed else min(different[0] + 1e-6, 1.0 + 1e-6)
        thresholds[key] = float((above + different[allowed]) / 2)  # midway: robust to rounding of scores
    return {"thresholds": thresholds, "pairs": {"same": int(len(same)), "different": int(len(different))}}


def full_evaluation(labels, probabilities, embeddings, centers, sub_centers=1, num_classes=None):
    """Every metric above, JSON-ready, plus the arrays the figures need."""
    metrics = classification_metrics(labels, probabilities, num_classes)
    metrics.update(retrieval_metrics(embeddings, labels))
    verification = verification_metrics(embeddings, labels)
    roc = verification.pop("roc")
    metrics.update(verification)
    metrics["angles"] = angular_statistics(embeddings, labels, centers, sub_centers)
    own, _ = target_angles(embeddings, labels, centers, sub_centers)
    return metrics, {"roc": roc, "target_angles": own}
