"""Partial FC (An et al., "Partial FC: Training 10 Million Identities on a
Single Machine", arXiv:2010.05222): each step scores the batch's classes
and a random sample of the others. The logits and the sampling of an
`AngularMarginLayer` with ``sample_rate < 1``; `losses.PartialFCCrossentropy`
trains them and `optimizers.PartialSGD` updates only the sampled centers.
"""

import keras
from keras import ops

from arcface_keras.numerics import l2_normalize

MASKED_LOGIT = -1e9  # a row's own class among the sampled columns (its target is column 0)


def partial_logits(layer, embeddings, labels, scale):
    """`layer`'s Partial FC logits (B, 1 + S) of unit `embeddings`: the margin
    target first, then the S sampled classes (every class of the batch among
    them), a row's own class masked with `MASKED_LOGIT`."""
    sample = sample_classes(layer, labels)
    count, per_class = ops.shape(sample)[0], layer.sub_centers
    rows = ops.reshape(ops.expand_dims(sample * per_class, 1) + ops.arange(per_class, dtype="int32"), (-1,))
    # Gathered by rows: the gradient reaches only the sampled centers.
    centers = l2_normalize(ops.take(ops.cast(layer._centers, "float32"), rows, axis=0), axis=-1)
    center_logits = ops.matmul(embeddings * scale, ops.transpose(centers))  # (B, S·K)
    per_center = ops.reshape(center_logits, (-1, count, per_class))
    logits = ops.max(per_center, axis=-1)
    # Where each label sits in the sample, and its closest sub-center there.
    # The sample holds each class once; scatter_update, not ops.scatter (a Python loop on PyTorch).
    position_of = ops.scatter_update(ops.zeros((layer.num_classes,), dtype="int32"), ops.expand_dims(sample, 1),
                                     ops.arange(count, dtype="int32"))
    positions = ops.take(position_of, labels)
    own = ops.take_along_axis(ops.stop_gradient(per_center), ops.reshape(positions, (-1, 1, 1)), axis=1)
    best = ops.cast(ops.argmax(own[:, 0, :], axis=-1), "int32")
    # The true centers gathered from the kernel itself: their gradient stays row-sparse too.
    true_rows = ops.take(rows, positions * per_class + best)
    true_centers = l2_normalize(ops.take(ops.cast(layer._centers, "float32"), true_rows, axis=0), axis=-1)
    target = layer._target_cosine(embeddings, true_centers, labels)
    batch = ops.arange(ops.shape(labels)[0], dtype="int32")
    others = ops.scatter_update(logits, ops.stack([batch, positions], axis=1),
                                ops.full_like(target, MASKED_LOGIT))
    return ops.concatenate([ops.expand_dims(scale * target, 1), others], axis=1)


def sample_classes(layer, labels):
    """Class ids (S,): every class of `labels`, then random others, ``S = max(ceil(r·C), B)`` at most C."""
    scores = keras.random.uniform((layer.num_classes,), seed=layer.seed_generator)
    scores = ops.scatter_update(scores, ops.expand_dims(labels, 1), ops.full_like(labels, 2.0, dtype="float32"))
    batch = ops.shape(labels)[0]
    if isinstance(batch, int):
        count = min(layer.num_classes, max(layer.sampled_classes, batch))
    else:
        count = ops.minimum(layer.num_classes, ops.maximum(layer.sampled_classes, batch))
    return ops.cast(ops.top_k(scores, count, sorted=False)[1], "int32")
