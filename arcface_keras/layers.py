"""Angular-margin classification heads: ArcFace, CosFace, SphereFace and their
combination, with optional sub-centers, per-class margins and schedulable
margin and scale.

All of them share one implementation, `AngularMarginLayer`, which computes the
combined margin of InsightFace, ``cos(m1·θ + m2) − m3``, on the angle θ between
an embedding and its true class center.

Reference:
    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", arXiv:1801.07698.
"""

import math
import warnings

import keras
import numpy as np
from keras import ops

from arcface_keras import numerics, partial_fc

__all__ = [
    "AngularMarginLayer",
    "ArcMarginLayer",
    "CosMarginLayer",
    "SphereMarginLayer",
    "margins_from_class_counts",
]

def _as_margin(name, value, num_classes, low, high, high_inclusive=False):
    """Validate a scalar or per-class margin; return a float or a list."""
    array = np.asarray(value, dtype="float64")
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != num_classes):
        raise ValueError(
            f"`{name}` must be a scalar or a vector of length num_classes="
            f"{num_classes}. Received: {name}={value!r}"
        )
    above = array > high if high_inclusive else array >= high
    if not np.all(np.isfinite(array)) or np.any(array < low) or np.any(above):
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"`{name}` must lie in [{low:g}, {high:g}{bracket}. "
            f"Received: {name}={value!r}"
        )
    return float(array) if array.ndim == 0 else [float(v) for v in array]


def _concrete(tensor):
    """The tensor's value as NumPy when it runs eagerly, else None."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    try:
        return ops.convert_to_numpy(tensor)
    except Exception:  # symbolic or traced (JAX tracer): no value yet
        return None


@keras.saving.register_keras_serializable(package="arcface_keras")
class AngularMarginLayer(keras.layers.Layer):
    """Combined angular-margin head: logits ``s·(cos(m1·θ_y + m2) − m3)``.

    Scores embeddings against learned class centers by cosine similarity and,
    when labels are given, penalises the true class with the combined margin
    of InsightFace. ArcFace is ``(1, m, 0)``, CosFace ``(1, 0, m)`` and
    SphereFace ``(m, 0, 0)``; see the thin entry points `ArcMarginLayer`,
    `CosMarginLayer` and `SphereMarginLayer`.

    The target logit is kept monotonically decreasing in θ on [0, π]: for
    θ with ``m1·θ + m2 ≤ π`` it is ``cos(m1·θ + m2) − m3``, which decreases
    there; beyond, it falls back to ``cos θ − m3 − h`` with
    ``h = max(m2·sin m2, 1 + cos θ_b)`` and ``θ_b = (π − m2) / m1`` the
    boundary. The second term makes the fallback start at or below the value
    ``−1 − m3`` reached at the boundary, so the curve never rises; for ArcFace
    with m < 2.3 it is the usual ``cos θ − m·sin m``. With
    ``easy_margin=True`` the margin applies only where ``cos θ_y > 0`` (as in
    InsightFace; that curve jumps up at θ = π/2 and is not monotonic).

    The angle of the true class is computed as
    ``θ = 2·atan2(‖x̂ − ŵ‖, ‖x̂ + ŵ‖)``, which is accurate to float32 rounding
    at every angle, 0 and π included, unlike ``acos`` of a float32 cosine.
    Everything is computed in float32, whatever the dtype policy: the layer
    defaults to a float32 policy (as keras-hub gives a task's head its own
    ``head_dtype``), so under a global ``mixed_float16`` or ``mixed_bfloat16``
    policy its kernel, cosines, margins and logits stay float32. Given a
    mixed ``dtype`` itself, it still computes in float32 and returns its
    compute dtype, as every Keras layer does.

    Scale and margin can be changed during training without recompiling: the
    scale is held in the non-trainable variable ``current_scale`` and every
    margin is multiplied by the non-trainable ``margin_factor`` (``m1`` as
    ``1 + factor·(m1 − 1)``). `MarginScheduler` ramps them.

    Args:
        num_classes: number of classes C, at least 2.
        scale: the scale s, a positive float, or ``"auto"`` for the fixed
            AdaCos scale ``√2·ln(C − 1)``. Defaults to `30.0`.
        m1: multiplicative angular margin (SphereFace), a scalar ≥ 1 or a
            vector of C values. Defaults to `1.0`.
        m2: additive angular margin (ArcFace) in radians, in [0, π), scalar
            or per class. Defaults to `0.5`.
        m3: additive cosine margin (CosFace), in [0, 2), scalar or per class.
            Defaults to `0.0`.
        easy_margin: apply the margin only where ``cos θ_y > 0``.
            Defaults to `False`.
        sub_centers: number K of centers per class (sub-center ArcFace); a
            class scores by its closest center. Defaults to `1`.
        fixed_centers: keep the class centers where they were initialised
            (not trained). With few classes and an embedding trained from
            scratch, learned centers can collapse onto each other, the
            margin's cheapest state (see the README); fixed, mutually
            orthogonal centers rule that out. Defaults to `False`.
        kernel_initializer: initializer of the class centers. Defaults to
            `"orthogonal"` with fixed centers (mutually orthogonal when
            ``embedding_dim ≥ C·K``), else `"glorot_uniform"`.
        kernel_regularizer: optional regularizer of the class centers.
            Defaults to `None`.
        sample_rate: Partial FC (An et al., ICCVW 2021): with labels, score
            each batch against its own classes plus a random sample of the
            others, ``ceil(sample_rate·C)`` classes in all (at least the
            batch's classes). 1.0 is the exact head. Below 1.0 the call with
            labels returns *partial logits* ``(B, 1 + S)``: column 0 holds
            each row's target logit (margin applied), the other S columns
            the sampled classes' logits, the row's own class masked to
            `MASKED_LOGIT` (−1e9); train them with `losses.PartialFCCrossentropy` (the
            same softmax cross-entropy with the target at column 0). The
            centers are then stored one per row (`center_rows`,
            ``(C·K, D)``; `kernel` is its transposed view), so that only
            the sampled rows receive gradients (``tf.IndexedSlices``), and
            `optimizers.PartialSGD` updates only those rows. Without labels
            the layer always scores all C classes. Defaults to `1.0`.
        seed: seed of the class sampling (``sample_rate < 1``).
            Defaults to `None`.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: either ``[embeddings, labels]`` (training: the margin is
            applied to each row's true class) or ``embeddings`` alone
            (inference: plain scaled cosines). Embeddings are float
            ``(B, D)``; labels are integers of shape ``(B,)`` or ``(B, 1)``.

    Input shape:
        ``(batch_size, embedding_dim)`` and optionally ``(batch_size,)``.

    Output shape:
        ``(batch_size, num_classes)``, float32 logits, to be used with
        ``SparseCategoricalCrossentropy(from_logits=True)``.

    Attributes:
        kernel: the class centers, ``(embedding_dim, num_classes · K)``, one
            column per center as in `Dense`; with K > 1 the K centers of class
            c are the columns ``c·K … c·K + K − 1``. With ``sample_rate < 1``
            a read-only view of `center_rows`.
        center_rows: ``sample_rate < 1`` only: the centers' variable,
            ``(C·K, D)``, one row per center.

    Example:

    >>> import numpy as np, keras
    >>> from arcface_keras import AngularMarginLayer
    >>> head = AngularMarginLayer(10, scale=16.0, m2=0.3, m3=0.1)
    >>> logits = head([np.random.rand(4, 8).astype("float32"),
    ...                np.array([0, 1, 2, 3])])
    >>> tuple(logits.shape)
    (4, 10)

    Reference:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
        Recognition", arXiv:1801.07698 (combined margin: section 2.4).
    """

    def __init__(
        self,
        num_classes,
        scale=30.0,
        m1=1.0,
        m2=0.5,
        m3=0.0,
        easy_margin=False,
        sub_centers=1,
        fixed_centers=False,
        kernel_initializer=None,
        kernel_regularizer=None,
        sample_rate=1.0,
        seed=None,
        **kwargs,
    ):
        if "fixed_centres" in kwargs:  # the spelling of models saved before 0.2
            fixed_centers = kwargs.pop("fixed_centres")
        kwargs.setdefault("dtype", "float32")
        super().__init__(autocast=False, **kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer ≥ 2. Received: num_classes={num_classes!r}"
            )
        if isinstance(sub_centers, bool) or not isinstance(sub_centers, (int, np.integer)) or sub_centers < 1:
            raise ValueError(
                f"`sub_centers` must be an integer ≥ 1. Received: sub_centers={sub_centers!r}"
            )
        if scale == "auto":
            if num_classes < 3:
                raise ValueError(
                    "`scale='auto'` (AdaCos, √2·ln(C − 1)) needs num_classes ≥ 3. "
                    f"Received: num_classes={num_classes}"
                )
        elif isinstance(scale, str) or not np.isfinite(scale) or scale <= 0:
            raise ValueError(
                f"`scale` must be a positive number or 'auto'. Received: scale={scale!r}"
            )
        if isinstance(sample_rate, (bool, str)) or not (np.isfinite(sample_rate) and 0 < sample_rate <= 1):
            raise ValueError(f"`sample_rate` must lie in (0, 1]. Received: sample_rate={sample_rate!r}")
        self.num_classes = int(num_classes)
        self.sample_rate = float(sample_rate)
        self.seed = seed
        self.partial = self.sample_rate < 1.0
        if self.partial:
            self.sampled_classes = max(1, math.ceil(self.sample_rate * self.num_classes))
            self.seed_generator = keras.random.SeedGenerator(seed, name="sample_seed")
        self.scale = scale
        self.m1 = _as_margin("m1", m1, num_classes, 1.0, 1e3)
        self.m2 = _as_margin("m2", m2, num_classes, 0.0, math.pi)
        self.m3 = _as_margin("m3", m3, num_classes, 0.0, 2.0)
        self.easy_margin = bool(easy_margin)
        self.sub_centers = int(sub_centers)
        self.fixed_centers = bool(fixed_centers)
        if kernel_initializer is None:
            kernel_initializer = "orthogonal" if self.fixed_centers else "glorot_uniform"
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = False

    @property
    def initial_scale(self):
        """The scale given at construction, with ``"auto"`` resolved."""
        if self.scale == "auto":
            return math.sqrt(2.0) * math.log(self.num_classes - 1)
        return float(self.scale)

    def build(self, input_shape):
        if _is_shape_list(input_shape):
            if len(input_shape) != 2:
                raise ValueError(
                    "Call the layer on `[embeddings, labels]` or on `embeddings`. "
                    f"Received inputs of shapes: {input_shape}"
                )
            embedding_shape, label_shape = input_shape
            _check_label_shape(label_shape)
            if None not in (embedding_shape[0], label_shape[0]) and embedding_shape[0] != label_shape[0]:
                raise ValueError(
                    f"`labels` must hold one label per embedding. Received: {label_shape[0]} labels "
                    f"for {embedding_shape[0]} embeddings"
                )
        else:
            embedding_shape = input_shape
        if len(embedding_shape) != 2 or embedding_shape[-1] is None:
            raise ValueError(
                "`embeddings` must have shape (batch_size, embedding_dim) with a known "
                f"embedding_dim. Received: embeddings.shape={tuple(embedding_shape)}"
            )
        if self.fixed_centers and embedding_shape[-1] < self.num_classes * self.sub_centers:
            warnings.warn(
                f"fixed_centers=True with embedding_dim={embedding_shape[-1]} < num_classes × sub_centers = "
                f"{self.num_classes * self.sub_centers}: the fixed centers cannot be mutually orthogonal.",
                stacklevel=2,
            )
        centers = self.num_classes * self.sub_centers
        self._centers = self.add_weight(
            name="kernel",
            shape=(centers, embedding_shape[-1]) if self.partial else (embedding_shape[-1], centers),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            trainable=not self.fixed_centers,
            dtype="float32",
        )
        self.current_scale = self.add_weight(
            name="current_scale",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_scale),
            trainable=False,
            dtype="float32",
        )
        self.margin_factor = self.add_weight(
            name="margin_factor",
            shape=(),
            initializer="ones",
            trainable=False,
            dtype="float32",
        )

    def call(self, inputs):
        logits = self._logits(inputs)
        # Computed in float32 always; returned in the layer's compute dtype, which is float32 unless
        # the layer is given a mixed dtype itself (by default it keeps float32 under a mixed global policy).
        return logits if self.compute_dtype == "float32" else ops.cast(logits, self.compute_dtype)

    def _logits(self, inputs):
        if isinstance(inputs, (list, tuple)):
            embeddings, labels = inputs
        else:
            embeddings, labels = inputs, None
        embeddings = numerics.l2_normalize(ops.cast(embeddings, "float32"), axis=-1)
        scale = self.current_scale
        if labels is not None and self.partial:
            return partial_fc.partial_logits(self, embeddings, self._validated_labels(labels, embeddings), scale)
        kernel = self.centers()
        if labels is not None and self.sub_centers == 1:  # the common case, with its gradient written out
            labels = self._validated_labels(labels, embeddings)
            return numerics.exact_margin_logits(embeddings, kernel, labels, scale, *self._margins(labels),
                                                easy_margin=self.easy_margin)
        inverse_norms = numerics.inverse_column_norms(kernel)
        # s·cos θ for every center; s is folded into the (B, D) side and the
        # center norms into one product, so the (B, C·K) logits are touched
        # once before the margin.
        center_logits = ops.matmul(embeddings * scale, kernel) * inverse_norms
        logits = center_logits
        if self.sub_centers > 1:
            logits = ops.reshape(center_logits, (-1, self.num_classes, self.sub_centers))
            logits = ops.max(logits, axis=-1)
        if labels is None:
            return logits
        labels = self._validated_labels(labels, embeddings)
        return self._with_margin(embeddings, labels, logits, self._true_centers(kernel, labels, center_logits))

    def apply_margin(self, embeddings, labels, logits):
        """The training logits ``layer([embeddings, labels])`` from the label-free
        ``logits = layer(embeddings)``, without scoring every class again.

        For a model that computes the label-free logits anyway and applies
        the margin where the labels are: only each row's true class is
        recomputed. Exact heads only (``sample_rate == 1``). The fused
        ``layer([embeddings, labels])`` is faster where nothing else needs
        the label-free logits' gradient; `without_margin` goes the other way.
        """
        if self.partial:
            raise ValueError("`apply_margin` needs the exact head; Partial FC scores a sample of classes. "
                             f"Received: sample_rate={self.sample_rate}")
        embeddings = numerics.l2_normalize(ops.cast(embeddings, "float32"), axis=-1)
        labels = self._validated_labels(labels, embeddings)
        centers = self._true_centers(self.centers(), labels, None, embeddings)
        return self._with_margin(embeddings, labels, ops.cast(logits, "float32"), centers)

    def without_margin(self, embeddings, labels, logits):
        """The label-free logits ``layer(embeddings)`` from the training logits
        ``logits = layer([embeddings, labels])``, without scoring every class again.

        The inverse of `apply_margin`: the margin changed one entry per row, so
        only each row's true class is restored, to ``s·cos θ_y`` (the closest
        sub-center's). No gradient flows through the result; it is for metrics
        (`ArcFaceClassifier` trains on the fused training logits and scores its
        metrics on these). Exact heads only (``sample_rate == 1``).
        """
        if self.partial:
            raise ValueError("`without_margin` needs the exact head; Partial FC scores a sample of classes. "
                             f"Received: sample_rate={self.sample_rate}")
        embeddings = ops.stop_gradient(numerics.l2_normalize(ops.cast(embeddings, "float32"), axis=-1))
        labels = self._validated_labels(labels, embeddings)
        centers = ops.stop_gradient(self._true_centers(self.centers(), labels, None, embeddings))
        true_logits = self.current_scale * ops.sum(embeddings * centers, axis=-1)
        return ops.scatter_update(ops.stop_gradient(ops.cast(logits, "float32")), _true_class_indices(labels),
                                  true_logits)

    def _with_margin(self, embeddings, labels, logits, centers):
        target = self._target_cosine(embeddings, centers, labels)
        # The margin touches one logit per row: overwrite it in place instead
        # of mixing a (B, C) one-hot mask into every logit.
        return ops.scatter_update(logits, _true_class_indices(labels), self.current_scale * target)

    @property
    def kernel(self):
        """The class centers, ``(D, C·K)``, one column per center as in `Dense`.

        With ``sample_rate < 1`` this is a read-only view of `center_rows`,
        the variable that holds them one per row.
        """
        return ops.transpose(self._centers) if self.partial else self._centers

    @property
    def center_rows(self):
        """Partial FC: the variable of the centers, ``(C·K, D)``, one row per center."""
        if not self.partial:
            raise AttributeError("`center_rows` exists with sample_rate < 1; the centers are `kernel`.")
        return self._centers

    def centers(self):
        """The class centers as float32 ``(D, C·K)`` columns."""
        return ops.cast(self.kernel, "float32")

    def _validated_labels(self, labels, embeddings):
        dtype = keras.backend.standardize_dtype(labels.dtype)
        if "int" not in dtype:
            raise ValueError(
                f"`labels` must be an integer tensor of class ids. Received: labels.dtype={dtype}"
            )
        _check_label_shape(labels.shape)
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        value = _concrete(labels)
        if value is not None:
            bad = value[(value < 0) | (value >= self.num_classes)]
            if bad.size:
                raise ValueError(
                    f"`labels` must lie in [0, {self.num_classes}) for num_classes="
                    f"{self.num_classes}. Received labels including: {bad[:5].tolist()}"
                )
            batch = _concrete(ops.shape(embeddings)[0])
            if batch is not None and int(batch) != value.shape[0]:
                raise ValueError(
                    f"`labels` must hold one label per embedding. Received: {value.shape[0]} "
                    f"labels for {int(batch)} embeddings"
                )
        return labels

    def _true_centers(self, kernel, labels, center_logits, embeddings=None):
        """Unit centers (B, D) of each row's class: its closest sub-center, read from
        `center_logits` (B, C·K), or when None scored anew against unit `embeddings`."""
        column = labels
        if self.sub_centers > 1:
            # No gradient through the choice of center, as with the max above.
            if center_logits is None:
                columns = ops.expand_dims(labels * self.sub_centers, 1) + ops.arange(self.sub_centers, dtype="int32")
                own = numerics.l2_normalize(ops.take(ops.transpose(ops.stop_gradient(kernel)), columns, axis=0), axis=-1)
                scores = ops.sum(own * ops.expand_dims(ops.stop_gradient(embeddings), 1), axis=-1)  # (B, K)
            else:
                per_class = ops.reshape(ops.stop_gradient(center_logits), (-1, self.num_classes, self.sub_centers))
                scores = ops.take_along_axis(per_class, ops.reshape(labels, (-1, 1, 1)), axis=1)[:, 0, :]
            column = labels * self.sub_centers + ops.cast(ops.argmax(scores, axis=-1), "int32")
        return numerics.l2_normalize(ops.transpose(numerics.gather_columns(kernel, column)), axis=-1)  # kernel: (D, C·K)

    def _per_row(self, margin, labels):
        if isinstance(margin, list):
            return ops.take(ops.convert_to_tensor(margin, dtype="float32"), labels)
        return ops.convert_to_tensor(margin, dtype="float32")

    def _margins(self, labels):
        """m1, m2, m3 of each row (or scalars), scaled by the schedulable `margin_factor`."""
        factor = self.margin_factor
        return (1.0 + factor * (self._per_row(self.m1, labels) - 1.0), factor * self._per_row(self.m2, labels),
                factor * self._per_row(self.m3, labels))

    def _target_cosine(self, embeddings, centers, labels):
        return numerics.margin_target(numerics.angle(embeddings, centers), *self._margins(labels), self.easy_margin)

    def compute_output_shape(self, input_shape):
        """``(B, C)``; with labels and ``sample_rate < 1``, the partial logits'
        ``(B, 1 + S)``, S = min(C, max(ceil(r·C), B)) (None while B is unknown)."""
        if _is_shape_list(input_shape) and self.partial:
            batch = input_shape[0][0]
            sampled = None if batch is None else min(self.num_classes, max(self.sampled_classes, batch))
            return (batch, None if sampled is None else 1 + sampled)
        embedding_shape = input_shape[0] if _is_shape_list(input_shape) else input_shape
        return (embedding_shape[0], self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "scale": self.scale,
            **self._margin_config(),
            "easy_margin": self.easy_margin,
            "sub_centers": self.sub_centers,
            "fixed_centers": self.fixed_centers,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            **({"sample_rate": self.sample_rate, "seed": self.seed} if self.partial else {}),
        }

    def _margin_config(self):
        return {"m1": self.m1, "m2": self.m2, "m3": self.m3}


def _true_class_indices(labels):
    """``(B, 2)`` indices ``(i, labels[i])`` of each row's true class in a (B, C) array."""
    return ops.stack([ops.arange(ops.shape(labels)[0], dtype="int32"), labels], axis=1)


def _is_shape_list(shape):
    return isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(shape[0], (list, tuple))


def _check_label_shape(shape):
    shape = tuple(shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(
            f"`labels` must have shape (batch_size,) or (batch_size, 1). Received: labels.shape={shape}"
        )


class _NamedMarginLayer(AngularMarginLayer):
    """An entry point that exposes one of the three margins as `margin`."""

    _margin_name = None  # "m1", "m2" or "m3"

    def __init__(self, num_classes, scale=30.0, margin=0.5, easy_margin=False, sub_centers=1, **kwargs):
        margins = {"m1": 1.0, "m2": 0.0, "m3": 0.0}
        try:
            margins[self._margin_name] = margin
            super().__init__(num_classes, scale=scale, easy_margin=easy_margin, sub_centers=sub_centers, **margins, **kwargs)
        except ValueError as error:
            raise ValueError(str(error).replace(f"{self._margin_name}=", "margin=").replace(f"`{self._margin_name}`", "`margin`")) from None
        self.margin = getattr(self, self._margin_name)

    def _margin_config(self):
        return {"margin": self.margin}


@keras.saving.register_keras_serializable(package="arcface_keras")
class ArcMarginLayer(_NamedMarginLayer):
    """ArcFace head: additive angular margin, target logit ``s·cos(θ_y + m)``.

    Without labels it returns ``s·cos θ_j`` for every class, so one layer
    serves training and label-free inference. Where ``θ_y + m > π`` the target
    falls back to ``s·(cos θ_y − m·sin m)``, keeping it monotonic in θ.
    Computed in float32 under any dtype policy. See `AngularMarginLayer` for
    the shared arguments, call arguments and numerics.

    Args:
        num_classes: number of classes, at least 2.
        scale: positive float or ``"auto"`` (AdaCos ``√2·ln(C − 1)``).
            Defaults to `30.0`.
        margin: additive angular margin m in radians, in [0, π), a scalar or
            one value per class (see `margins_from_class_counts`).
            Defaults to `0.5`.
        easy_margin: apply the margin only where ``cos θ_y > 0``.
            Defaults to `False`.
        sub_centers: centers per class (sub-center ArcFace). Defaults to `1`.
        **kwargs: `fixed_centers`, `kernel_initializer`, `kernel_regularizer` and base layer
            arguments.

    Example:

    >>> import keras
    >>> from arcface_keras import ArcMarginLayer
    >>> images = keras.Input((28, 28, 1))
    >>> labels = keras.Input((), dtype="int32")
    >>> embeddings = keras.layers.Dense(64)(keras.layers.Flatten()(images))
    >>> head = ArcMarginLayer(10, scale=16.0, margin=0.3)
    >>> train_model = keras.Model([images, labels], head([embeddings, labels]))
    >>> predict_model = keras.Model(images, head(embeddings))  # no labels

    Reference:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
        Recognition", arXiv:1801.07698.
    """

    _margin_name = "m2"


@keras.saving.register_keras_serializable(package="arcface_keras")
class CosMarginLayer(_NamedMarginLayer):
    """CosFace head: additive cosine margin, target logit ``s·(cos θ_y − m)``.

    Same arguments as `ArcMarginLayer`; `margin` lies in [0, 2) and
    defaults to `0.35`.

    Reference:
        Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
        Recognition", arXiv:1801.09414.
    """

    _margin_name = "m3"

    def __init__(self, num_classes, scale=30.0, margin=0.35, **kwargs):
        super().__init__(num_classes, scale=scale, margin=margin, **kwargs)


@keras.saving.register_keras_serializable(package="arcface_keras")
class SphereMarginLayer(_NamedMarginLayer):
    """SphereFace-style head: multiplicative margin, target ``s·cos(m·θ_y)``.

    Same arguments as `ArcMarginLayer`; `margin` is ≥ 1 and defaults to
    `1.35`. Past ``θ = π/m`` the target continues as ``cos θ − (1 + cos(π/m))``
    so it keeps falling (SphereFace's own piecewise ψ(θ) serves the same
    purpose). The logits are normalised and scaled, as in the combined
    margin of the ArcFace paper, not weighted by the feature norm.

    Reference:
        Liu et al., "SphereFace: Deep Hypersphere Embedding for Face
        Recognition", arXiv:1704.08063.
    """

    _margin_name = "m1"

    def __init__(self, num_classes, scale=30.0, margin=1.35, **kwargs):
        super().__init__(num_classes, scale=scale, margin=margin, **kwargs)


def margins_from_class_counts(class_counts, max_margin=0.5):
    """Per-class margins ∝ n_j^(-1/4), the largest equal to `max_margin` (LDAM).

    Rare classes get larger margins. Pass the result as the `margin` of
    `ArcMarginLayer` (or `m2`/`m3` of `AngularMarginLayer`).

    Args:
        class_counts: number of training samples of each class, all > 0.
        max_margin: the margin of the rarest class. Defaults to `0.5`.

    Returns:
        A list of floats, one margin per class.

    Reference:
        Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
        Margin Loss", arXiv:1906.07413.
    """
    counts = np.asarray(class_counts, dtype="float64")
    if counts.ndim != 1 or counts.size < 2 or np.any(~np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError(
            "`class_counts` must be a vector of at least 2 positive counts. "
            f"Received: class_counts={class_counts!r}"
        )
    if not (np.isfinite(max_margin) and 0 < max_margin < math.pi):
        raise ValueError(f"`max_margin` must lie in (0, π). Received: max_margin={max_margin!r}")
    raw = counts ** -0.25
    return [float(v) for v in raw * (max_margin / raw.max())]


def all_layers(model):
    """`model` and every layer inside it, depth first: the layers of nested
    models (``layer.layers``) included. Layers a custom layer keeps as
    attributes are not reached; Keras 3 has no public way to list them."""
    yield model
    for layer in getattr(model, "layers", ()):
        yield from all_layers(layer)
