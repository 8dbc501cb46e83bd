"""Losses that are losses: no weights. The triplet baseline.

TensorFlow Addons, the usual home of `TripletSemiHardLoss` and
`TripletHardLoss`, is end-of-life with no Keras 3 build; `TripletLoss` has
their semantics, in `keras.ops`, so migrating users get the same numbers.
"""

import keras
from keras import ops

from arcface_keras.partial_fc import MASKED_LOGIT

MININGS = ("semi-hard", "hard")
DISTANCES = ("squared-l2", "l2", "angular")


def pairwise_distances(embeddings, distance="squared-l2"):
    """(B, B) distances: squared Euclidean, Euclidean, or 1 − cosine."""
    embeddings = ops.cast(embeddings, "float32")
    if distance == "angular":
        unit = embeddings * ops.rsqrt(ops.maximum(ops.sum(ops.square(embeddings), axis=1, keepdims=True), 1e-12))
        angular = ops.maximum(1.0 - ops.matmul(unit, ops.transpose(unit)), 0.0)
        return angular * (1.0 - ops.eye(ops.shape(embeddings)[0], dtype="float32"))
    squares = ops.sum(ops.square(embeddings), axis=1)
    squared = squares[:, None] + squares[None, :] - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
    squared = ops.maximum(squared, 0.0)
    off_diagonal = 1.0 - ops.eye(ops.shape(embeddings)[0], dtype="float32")
    if distance == "squared-l2":
        return squared * off_diagonal
    zero = ops.cast(squared <= 0.0, "float32")
    # sqrt has no gradient at 0: lift the zeros, take the root, put them back.
    return ops.sqrt(squared + zero * 1e-16) * (1.0 - zero) * off_diagonal


def _masked_maximum(data, mask):
    """Per row, the maximum of `data` where `mask` (as Addons computes it)."""
    minimum = ops.min(data, axis=1, keepdims=True)
    return ops.max((data - minimum) * mask, axis=1, keepdims=True) + minimum


def _masked_minimum(data, mask):
    """Per row, the minimum of `data` where `mask` (as Addons computes it)."""
    maximum = ops.max(data, axis=1, keepdims=True)
    return ops.min((data - maximum) * mask, axis=1, keepdims=True) + maximum


@keras.saving.register_keras_serializable(package="arcface_keras")
class TripletLoss(keras.losses.Loss):
    """Triplet loss with online mining, as TensorFlow Addons defines it.

    ``semi-hard`` (Addons' `TripletSemiHardLoss`): for every anchor-positive
    pair, the closest negative that is farther than the positive, else the
    farthest negative; the hinge ``max(d(a,p) − d(a,n) + margin, 0)`` is
    averaged over all anchor-positive pairs. ``hard`` (`TripletHardLoss`):
    per anchor, its farthest positive and closest negative; averaged over
    anchors.

    Args:
        margin: the margin of the hinge. Defaults to `1.0`.
        mining: ``"semi-hard"`` or ``"hard"``. Defaults to `"semi-hard"`.
        distance: ``"squared-l2"`` (Addons' default, which it names "L2"),
            ``"l2"`` or ``"angular"`` (1 − cosine similarity).
            Defaults to `"squared-l2"`.
        name: name of the loss. Defaults to `"triplet_loss"`.

    Call arguments:
        y_true: integer labels (B,) or (B, 1).
        y_pred: embeddings (B, D).

    Reference:
        Schroff et al., "FaceNet", arXiv:1503.03832.
    """

    def __init__(self, margin=1.0, mining="semi-hard", distance="squared-l2", name="triplet_loss", **kwargs):
        if mining not in MININGS:
            raise ValueError(f"`mining` must be one of {MININGS}. Received: mining={mining!r}")
        if distance not in DISTANCES:
            raise ValueError(f"`distance` must be one of {DISTANCES}. Received: distance={distance!r}")
        if not margin >= 0:
            raise ValueError(f"`margin` must be ≥ 0. Received: margin={margin!r}")
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)
        self.mining = mining
        self.distance = distance

    def call(self, y_true, y_pred):
        labels = ops.reshape(y_true, (-1,))
        distances = pairwise_distances(y_pred, self.distance)
        batch = ops.shape(distances)[0]
        same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32")
        different = 1.0 - same
        positives = same - ops.eye(batch, dtype="float32")
        if self.mining == "hard":
            hardest_positive = _masked_maximum(distances, positives)
            hardest_negative = _masked_minimum(distances, different)
            return ops.mean(ops.maximum(hardest_positive - hardest_negative + self.margin, 0.0))
        # For anchor a and positive p: negatives n with d(a, n) > d(a, p).
        # farther[a, p, n] is that condition, restricted to real negatives.
        farther = ops.cast(distances[:, None, :] > distances[:, :, None], "float32") * different[:, None, :]
        has_semi_hard = ops.sum(farther, axis=2) > 0
        maximum = ops.max(distances, axis=1, keepdims=True)  # (B, 1), per anchor
        closest_farther = ops.min((distances[:, None, :] - maximum[:, :, None]) * farther, axis=2) + maximum
        farthest_negative = _masked_maximum(distances, different)  # (B, 1)
        negative = ops.where(has_semi_hard, closest_farther, farthest_negative)
        hinge = ops.maximum((self.margin + distances - negative) * positives, 0.0)
        return ops.sum(hinge) / ops.maximum(ops.sum(positives), 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "distance": self.distance}


@keras.saving.register_keras_serializable(package="arcface_keras")
class PartialFCCrossentropy(keras.losses.Loss):
    """Softmax cross-entropy of Partial FC logits, whose target is column 0.

    An `AngularMarginLayer` with ``sample_rate < 1`` returns, with labels,
    ``(B, 1 + S)`` logits: each row's margin target logit first, then the
    sampled classes (its own masked). The loss is ``logsumexp(row) − row[0]``,
    the cross-entropy of the exact head restricted to the sampled classes;
    `y_true` (the class ids) has already been used by the layer and is
    ignored here.

    Reference:
        An et al., "Partial FC: Training 10 Million Identities on a Single
        Machine", ICCVW 2021.
    """

    def __init__(self, label_smoothing=0.0, name="partial_fc_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        # The masked own-class column is left out of the smoothing term.
        return _smoothed(logits, 0, self.label_smoothing, ops.cast(logits > MASKED_LOGIT / 10, "float32"))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="arcface_keras")
def partial_fc_accuracy(y_true, y_pred):
    """Share of rows whose target logit (column 0) beats every sampled class."""
    return ops.cast(ops.argmax(y_pred, axis=-1) == 0, "float32")


def _smoothing(value):
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"`label_smoothing` must lie in [0, 1). Received: label_smoothing={value!r}")
    return float(value)


def _smoothed(logits, labels, smoothing, valid=None):
    """Cross-entropy per row with target (1 − ε) on `labels` and ε spread evenly over the (valid) classes."""
    log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    rows = ops.shape(logits)[0]
    labels = ops.zeros((rows,), "int32") + ops.cast(labels, "int32")
    nll = -ops.take_along_axis(log_probs, ops.expand_dims(labels, 1), axis=1)[:, 0]
    if not smoothing:
        return nll
    valid = ops.ones_like(log_probs) if valid is None else valid
    spread = -ops.sum(log_probs * valid, axis=-1) / ops.sum(valid, axis=-1)
    return (1.0 - smoothing) * nll + smoothing * spread


@keras.saving.register_keras_serializable(package="arcface_keras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Softmax cross-entropy from logits and integer labels, with label smoothing.

    The target puts ``1 − ε`` on the label and ``ε / C`` on every class
    (Szegedy et al., 2016), as `keras.losses.CategoricalCrossentropy`'s
    ``label_smoothing`` does for one-hot labels; margin heads' logits are
    smoothed the same way.

    Args:
        label_smoothing: ε in [0, 1). Defaults to `0.1`.
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = _smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return _smoothed(ops.cast(y_pred, "float32"), labels, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
