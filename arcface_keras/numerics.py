"""The numerics the margin heads share, as pure `keras.ops` functions:
normalisation, the angle between unit vectors, and the margin's target.

Reference:
    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", arXiv:1801.07698 (the combined margin cos(m1·θ + m2) − m3).
"""

import math

from keras import ops

EPSILON = 1e-12  # floor under squared norms: zero vectors stay finite.


def l2_normalize(x, axis=-1):
    """`x` scaled to unit norm along `axis`.

    Not ``keras.ops.normalize``: its ``min(rsqrt(Σx²), 1/ε)`` sends 0·∞ = NaN
    gradients back from zero vectors; flooring Σx² before the rsqrt keeps
    every gradient finite.
    """
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), EPSILON))


def angle(a, b):
    """The angle θ ∈ [0, π] between unit rows of `a` and `b` (B, D) → (B,).

    ``2·atan2(|a − b|, |a + b|)``: accurate at 0 and π, where ``acos`` of the
    dot product loses half the digits and has an infinite gradient.
    """
    difference = ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=-1), EPSILON))
    total = ops.sqrt(ops.maximum(ops.sum(ops.square(a + b), axis=-1), EPSILON))
    return 2.0 * ops.arctan2(difference, total)


def margin_target(theta, m1, m2, m3, easy_margin=False):
    """The true class's cosine with the margin: ``cos(m1·θ + m2) − m3``.

    Past ``m1·θ + m2 > π`` the target would rise again; there it is
    ``cos θ − m3 − drop`` instead, ``drop = max(m2·sin m2, 1 + cos((π − m2)/m1))``,
    so the target stays monotonic and continuous from below. With
    `easy_margin`, the margin applies only where ``cos θ > 0``.
    """
    m1, m2, m3 = (ops.cast(m, theta.dtype) if hasattr(m, "dtype") else ops.convert_to_tensor(m, dtype=theta.dtype)
                  for m in (m1, m2, m3))
    cosine = ops.cos(theta)
    shifted = m1 * theta + m2
    boundary = (math.pi - m2) / m1
    drop = ops.maximum(m2 * ops.sin(m2), 1.0 + ops.cos(boundary))
    target = ops.where(shifted <= math.pi, ops.cos(shifted) - m3, cosine - m3 - drop)
    if easy_margin:
        target = ops.where(cosine > 0.0, target, cosine)
    return target


@ops.custom_gradient
def inverse_column_norms(kernel):
    """``1 / |w_j|`` of every column of a (D, C) kernel (squared norms floored
    at `EPSILON`), with its gradient in one pass over the kernel.

    The same values and gradient as ``rsqrt(maximum(sum(square(kernel), 0), ε))``
    differentiated op by op, which materialises a broadcast and two products
    of the kernel's size on the way back.
    """
    squared = ops.sum(ops.square(kernel), axis=0)
    inverse = ops.rsqrt(ops.maximum(squared, EPSILON))

    def grad(*args, upstream=None):
        if upstream is None:  # TensorFlow and JAX pass it positionally, PyTorch by keyword
            (upstream,) = args
        # d rsqrt(q) / dw = −q^(−3/2)·w where q > ε; zero where the floor holds
        coefficient = ops.where(squared > EPSILON, -upstream * inverse * inverse * inverse, 0.0)
        return kernel * coefficient

    return inverse, grad


def gather_columns(kernel, columns):
    """``kernel[:, columns]``, (D, B), with a gradient written straight into a
    (D, C) tensor (one pass over the kernel's size), where a gather along
    axis 1 differentiates through a transpose and a segment sum of the
    transposed kernel on TensorFlow."""

    @ops.custom_gradient
    def gather(kernel):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            rows = ops.shape(kernel)[0]
            count = ops.shape(columns)[0]
            # every (d, columns[i]) pair; repeated columns add up, as a gather's gradient does
            row_ids = ops.reshape(ops.repeat(ops.expand_dims(ops.arange(rows, dtype="int32"), 1), count, axis=1), (-1,))
            column_ids = ops.reshape(ops.repeat(ops.expand_dims(columns, 0), rows, axis=0), (-1,))
            indices = ops.stack([row_ids, column_ids], axis=1)
            return ops.scatter(indices, ops.reshape(upstream, (-1,)), ops.shape(kernel))

        return ops.take(kernel, columns, axis=1), grad

    return gather(kernel)
