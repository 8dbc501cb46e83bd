"""Splitting labelled images: stratified splits, long-tailed subsets, channel statistics.

Images are NumPy arrays or `ImageFiles` (anything indexable by an index
array, with ``len`` and ``shape``); labels are int64 arrays.
"""

import numpy as np

from arcface_keras.errors import DataError


def long_tail_counts(class_sizes, ratio):
    """Exponential profile: class c keeps n_max · ratio^(−c / (C − 1)) images.

    n_max is the smallest class size available, so every class can be cut to
    its quota; class 0 is the head, class C − 1 the tail (n_max / ratio).
    """
    if not ratio >= 1:
        raise DataError(f"imbalance_ratio must be ≥ 1. Received: imbalance_ratio={ratio!r}")
    sizes = np.asarray(class_sizes)
    exponents = np.arange(len(sizes)) / max(len(sizes) - 1, 1)
    return np.maximum(1, np.floor(sizes.min() * ratio ** -exponents)).astype(int)


def long_tail(x, y, ratio, seed=0):
    """A long-tailed subset of (x, y) following `long_tail_counts`."""
    classes, sizes = np.unique(y, return_counts=True)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([
        rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, long_tail_counts(sizes, ratio))
    ])
    keep = np.sort(keep)
    return x[keep], y[keep]


def channel_statistics(images):
    """Per-channel mean and std of uint8 NHWC images, in [0, 1] units."""
    pixels = images.reshape(-1, images.shape[-1]).astype("float64") / 255.0
    std = pixels.std(axis=0)
    return tuple(float(v) for v in pixels.mean(axis=0)), tuple(float(max(v, 1e-3)) for v in std)


def stratified_split(x, y, fraction, seed):
    """Split off round(fraction · N) samples, each class in proportion.

    Per-class counts are proportional quotas rounded by largest remainder, so
    the total is exact. Returns ``(x_kept, y_kept, x_held, y_held)``.
    """
    classes, sizes = np.unique(y, return_counts=True)
    total = int(round(fraction * len(y)))
    quotas = sizes * total / len(y)
    counts = np.floor(quotas).astype(int)
    for index in np.argsort(counts - quotas)[: total - counts.sum()]:
        counts[index] += 1
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, counts)])
    held = np.sort(held)
    kept = np.setdiff1d(np.arange(len(y)), held)
    return x[kept], y[kept], x[held], y[held]


# ---------------------------------------------------------------- sources --
