"""The numerics the margin heads share, as pure `keras.ops` functions:
normalisation, the angle between unit vectors, and the margin's target.

Reference:
    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", arXiv:1801.07698 (the combined margin cos(m1·θ + m2) − m3).
"""

import math

import keras
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


def squared_column_norms(kernel):
    """``|w_j|²`` of every column of a (D, C) kernel.

    On TensorFlow without XLA, ``sum(square(kernel), 0)`` writes a
    kernel-sized square before it sums (``keras.ops.norm`` does the same);
    TensorFlow's fused Euclidean norm reads the kernel once. Elsewhere the
    plain expression. Forward use only: the callers write the gradient out.
    """
    if keras.backend.backend() == "tensorflow" and not _in_xla_function():
        import tensorflow as tf

        return ops.square(tf.math.reduce_euclidean_norm(kernel, axis=0))
    return ops.sum(ops.square(kernel), axis=0)


def _in_xla_function():
    """Whether TensorFlow is tracing for XLA (``jit_compile=True``), which has
    no EuclideanNorm kernel. TensorFlow offers no public test; where its
    private one is missing, assume XLA (the plain expression runs anywhere)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


@ops.custom_gradient
def inverse_column_norms(kernel):
    """``1 / |w_j|`` of every column of a (D, C) kernel (squared norms floored
    at `EPSILON`), with its gradient in one pass over the kernel.

    The same values and gradient as ``rsqrt(maximum(sum(square(kernel), 0), ε))``
    differentiated op by op, which materialises a broadcast and two products
    of the kernel's size on the way back.
    """
    squared = squared_column_norms(kernel)
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
            # scatter_update, not ops.scatter: Keras' PyTorch scatter loops in Python per index
            zeros = ops.zeros(ops.shape(kernel), dtype=upstream.dtype)
            return ops.scatter_update(zeros, indices, ops.reshape(upstream, (-1,)), reduction="add")

        return ops.take(kernel, columns, axis=1), grad

    return gather(kernel)


def margin_slope(theta, m1, m2, easy_margin=False):
    """``d margin_target / dθ``: ``−m1·sin(m1·θ + m2)``, or ``−sin θ`` past the
    fallback's boundary and, with `easy_margin`, where ``cos θ ≤ 0`` (m3 and the
    fallback's drop do not depend on θ)."""
    m1, m2 = (ops.cast(m, theta.dtype) if hasattr(m, "dtype") else ops.convert_to_tensor(m, dtype=theta.dtype)
              for m in (m1, m2))
    shifted = m1 * theta + m2
    slope = ops.where(shifted <= math.pi, -m1 * ops.sin(shifted), -ops.sin(theta))
    if easy_margin:
        slope = ops.where(ops.cos(theta) > 0.0, slope, -ops.sin(theta))
    return slope


def _segment_sum(values, labels, count):
    """``Σ values[i]`` over the rows `i` of each label, a (count,) vector."""
    zeros = ops.zeros((count,), dtype=values.dtype)
    return ops.scatter_update(zeros, ops.expand_dims(labels, 1), values, reduction="add")


def exact_margin_logits(embeddings, kernel, labels, scale, m1, m2, m3, easy_margin=False):
    """The exact head's training logits, one center per class: ``s·cos θ_ij``
    of unit `embeddings` (B, D) against every column of `kernel` (D, C), each
    row's true class replaced by ``s·margin_target(θ_iy)``, θ_iy from `angle`.

    Its gradient is written out: the margin's path reaches the true class's
    center only in the plane of the embedding and that center, so its part in
    the kernel gradient rides in the (B, C) matrix that the matmul's gradient
    multiplies anyway (the e-direction) and in a per-class coefficient of the
    kernel beside the center norms' own (the center's direction). No (D, C)
    scatter and one (D, C) product in all, where autodiff adds three kernel
    gradients of that size. `m1`, `m2`, `m3` are scalars or per-row (B,).
    """
    rows = ops.arange(ops.shape(labels)[0], dtype="int32")
    indices = ops.stack([rows, labels], axis=1)
    count = ops.shape(kernel)[1]

    @ops.custom_gradient
    def head(embeddings, kernel):
        squared = squared_column_norms(kernel)
        inverse = ops.rsqrt(ops.maximum(squared, EPSILON))
        cosine_logits = ops.matmul(embeddings * scale, kernel) * inverse
        own_inverse = ops.take(inverse, labels)
        centers = ops.transpose(ops.take(kernel, labels, axis=1)) * ops.expand_dims(own_inverse, 1)
        theta = angle(embeddings, centers)
        target = scale * margin_target(theta, m1, m2, m3, easy_margin)
        logits = ops.scatter_update(cosine_logits, indices, target)

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally, PyTorch by keyword
                (upstream,) = args
            # dL/dθ of each row's target
            upstream_true = ops.take_along_axis(upstream, ops.expand_dims(labels, 1), axis=1)[:, 0]
            gamma = upstream_true * scale * margin_slope(theta, m1, m2, easy_margin)
            # θ = 2·atan2(p, q), p = |e − c|, q = |e + c| (floored as `angle` floors them):
            # dθ/de = cu·(e − c) − cv·(e + c), dθ/dc = −cu·(e − c) − cv·(e + c)
            difference = ops.sum(ops.square(embeddings - centers), axis=-1)
            total = ops.sum(ops.square(embeddings + centers), axis=-1)
            p, q = ops.sqrt(ops.maximum(difference, EPSILON)), ops.sqrt(ops.maximum(total, EPSILON))
            k = 2.0 / (p * p + q * q)
            cu = ops.where(difference > EPSILON, k * q / p, 0.0)
            cv = ops.where(total > EPSILON, k * p / q, 0.0)
            # Through c = w·|w|⁻¹ the true column's gradient is |w|⁻¹·(g − c·(c·g)), g = γ·dθ/dc:
            # its e-part goes into the matmul's (B, C) factor, its c-part into a per-class coefficient.
            normed = ops.cast(ops.take(squared, labels) > EPSILON, "float32")
            center_part = gamma * ((cu - cv) * (1.0 - normed * ops.sum(centers * centers, axis=-1))
                                   + normed * (cu + cv) * ops.sum(embeddings * centers, axis=-1))
            folded = ops.scatter_update(upstream * inverse, indices, -own_inverse * gamma * (cu + cv) / scale)
            grad_embeddings = (scale * ops.matmul(folded, ops.transpose(kernel))
                               + ops.expand_dims(gamma * (cu - cv), 1) * embeddings)
            # the center norms: dL/d|w_j|⁻¹ = Σ_i G_ij·Z_ij / |w_j|⁻¹ over the rows whose class is not j
            norm_upstream = (ops.sum(upstream * logits, axis=0) - _segment_sum(upstream_true * target, labels, count)) / inverse
            coefficient = (ops.where(squared > EPSILON, -norm_upstream * inverse * inverse * inverse, 0.0)
                           + _segment_sum(own_inverse * own_inverse * center_part, labels, count))
            grad_kernel = ops.matmul(ops.transpose(embeddings * scale), folded) + kernel * coefficient
            return grad_embeddings, grad_kernel

        return logits, grad

    return head(embeddings, kernel)
