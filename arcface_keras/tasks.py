"""`ArcFaceClassifier`: a backbone, an embedding and an angular-margin head as
one Keras model that trains with ``fit(x, y)`` on TensorFlow, JAX and PyTorch.

The head needs the labels to apply its margin; `call()` never sees them.
Keras 3 hands them to `Model.compute_loss(x, y, y_pred, ...)`, inside the
gradient computation on every backend (keras-team/keras PR #18493), and that
is where the head applies the margin. So the data is plain ``(x, y)``:
arrays, `tf.data`, `keras.utils.PyDataset` or generators.
"""

import keras
from keras import layers, ops

from arcface_keras.layers import AngularMarginLayer, ArcMarginLayer

# The toolkit's recipe for a head trained from scratch on few classes (the layer keeps the paper's 30 / 0.5).
DEFAULT_SCALE = 16.0
DEFAULT_MARGIN = 0.3
POOLINGS = ("avg", "max")


@keras.saving.register_keras_serializable(package="arcface_keras")
class ArcFaceClassifier(keras.Model):
    """An image classifier and embedder trained with an angular margin (ArcFace).

    images → `backbone` → pooling (when the backbone returns a feature map)
    → dropout → embedding projection (``Dense`` then batch norm, the
    "BN-FC" embedding of the ArcFace paper; skipped with
    ``embedding_dim=None``) → `head`. Called or asked to `predict`, the model
    returns class probabilities (B, C), with no labels; `embed` returns unit
    embeddings and `embedder` is a plain functional model from images to them.

    Training passes the labels to the head inside `compute_loss`, so the
    margin applies to each row's true class and ``fit(x, y)`` needs nothing
    else. Under ``fit`` the model's call (``training=True``) returns
    ``{"embedding": ...}`` for `compute_loss`, which scores the classes
    with the margin on each row's true class in one fused step
    (``head([embedding, labels])``) and adds to that dict, for
    `compute_metrics`, the label-free ``"logits"`` recovered from them
    (`AngularMarginLayer.without_margin`: only the true class is rescored);
    every other call returns probabilities.

    Losses and metrics: the training loss is the compiled loss (default:
    softmax cross-entropy from logits) of the *margin* logits. Metrics
    (default: accuracy) are computed on the probabilities *without* the
    margin, in training and validation alike, so they score what `predict`
    gives (a Partial FC head, which scores a sample of the classes in
    training, is compiled without metrics). ``val_loss`` (and `evaluate`'s loss) is the cross-entropy of those
    probabilities, without the margin, plus any regularization losses; it is
    therefore lower than the training loss at equal fit.

    Mixed precision: the backbone and the projection follow the dtype
    policy; the head computes in float32 (its own default dtype, as
    keras-hub's ``head_dtype``), so logits and probabilities are float32.

    Args:
        backbone: a `keras.Model` from images to features, either a vector
            (B, F) or a feature map (B, H, W, F), which is pooled.
        num_classes: number of classes, at least 2.
        head: a layer of the `AngularMarginLayer` family (ArcFace, CosFace,
            SphereFace, sub-centers, fixed centers, per-class margins,
            Partial FC with ``sample_rate < 1``). Defaults to
            ``ArcMarginLayer(num_classes, scale=16.0, margin=0.3)``.
        embedding_dim: size of the embedding projection; `None` uses the
            backbone's (pooled) features as the embedding. Defaults to `128`.
        pooling: ``"avg"`` or ``"max"``: how a feature map is pooled.
            Defaults to `"avg"`.
        dropout: dropout rate before the projection. Defaults to `0.0`.
        **kwargs: base `keras.Model` arguments (``name``, ...).

    Example:

    >>> import keras, numpy as np
    >>> from arcface_keras import ArcFaceClassifier
    >>> backbone = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu")])
    >>> model = ArcFaceClassifier(backbone, num_classes=3, embedding_dim=16)
    >>> model.compile()
    >>> x, y = np.random.rand(12, 8, 8, 1).astype("float32"), np.arange(12) % 3
    >>> model.fit(x, y, epochs=1, verbose=0).history["loss"][0] > 0
    True
    >>> model.predict(x, verbose=0).shape, model.embed(x, verbose=0).shape
    ((12, 3), (12, 16))

    Reference:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
        Recognition", arXiv:1801.07698.
    """

    def __init__(self, backbone, num_classes, *, head=None, embedding_dim=128, pooling="avg", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, keras.Model):
            raise ValueError(f"`backbone` must be a keras.Model. Received: backbone={backbone!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer ≥ 2. Received: num_classes={num_classes!r}")
        if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int)
                                          or embedding_dim < 1):
            raise ValueError(f"`embedding_dim` must be a positive integer or None. Received: embedding_dim={embedding_dim!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must lie in [0, 1). Received: dropout={dropout!r}")
        if head is None:
            head = ArcMarginLayer(num_classes, scale=DEFAULT_SCALE, margin=DEFAULT_MARGIN, name="head")
        if not isinstance(head, AngularMarginLayer):
            raise ValueError(f"`head` must be a layer of the AngularMarginLayer family. Received: head={head!r}")
        if head.num_classes != num_classes:
            raise ValueError(f"`head` scores {head.num_classes} classes, not num_classes={num_classes}. "
                             f"Received: head.num_classes={head.num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.head = head
        self.embedding_dim = embedding_dim
        self.pooling = pooling
        self.dropout = float(dropout)
        self.pool = (layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D)(name="pool")
        self.dropout_layer = layers.Dropout(self.dropout, name="dropout")
        if embedding_dim is None:
            self.projection = self.projection_norm = None
        else:
            self.projection = layers.Dense(embedding_dim, use_bias=False, name="embedding_dense")
            # momentum 0.9, the toolkit's: Keras' 0.99 lags far behind a fast-changing embedding in short runs
            self.projection_norm = layers.BatchNormalization(momentum=0.9, name="embedding_bn")
        inputs = getattr(backbone, "inputs", None)
        if inputs:  # a functional backbone: build now, as keras-hub's tasks are built when made
            self.build(tuple(inputs[0].shape))

    def build(self, input_shape):
        if not self.backbone.built:
            self.backbone.build(input_shape)
        shape = tuple(self.backbone.compute_output_shape(input_shape))
        if len(shape) == 4:
            shape = (shape[0], shape[-1])
        elif len(shape) != 2:
            raise ValueError(f"`backbone` must return (B, F) or (B, H, W, F) features. Received: output shape {shape}")
        if self.projection is not None:
            if not self.projection.built:
                self.projection.build(shape)
            shape = (shape[0], self.embedding_dim)
            if not self.projection_norm.built:
                self.projection_norm.build(shape)
        if not self.head.built:
            self.head.build(shape)
        self.built = True

    def _embeddings(self, images, training=None):
        features = self.backbone(images, training=training)
        if len(features.shape) == 4:
            features = self.pool(features)
        features = self.dropout_layer(features, training=training)
        if self.projection is not None:
            features = self.projection_norm(self.projection(features), training=training)
        return features

    def call(self, inputs, training=None):
        embeddings = self._embeddings(inputs, training=training)
        if training:  # the head scores the classes in compute_loss, which has the labels
            return {"embedding": embeddings}
        return ops.softmax(ops.cast(self.head(embeddings), "float32"), axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of the head's margin logits (labels applied here) in
        training; the label-free cross-entropy of the probabilities otherwise."""
        if isinstance(y_pred, dict):
            labels = ops.cast(ops.reshape(y, (-1,)), "int32")
            logits = self.head([y_pred["embedding"], labels])  # the fused training logits, margin included
            if not self.head.partial:  # for compute_metrics, which receives this same dict
                y_pred["logits"] = self.head.without_margin(y_pred["embedding"], labels, logits)
            return super().compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight, training=training)
        loss = keras.losses.SparseCategoricalCrossentropy()(y, y_pred, sample_weight=sample_weight)
        for extra in self.losses:  # regularization
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):  # training: the metrics score the probabilities without the margin
            if "logits" not in y_pred:  # Partial FC: compiled without metrics (see `compile`)
                return super().compute_metrics(x, y, None, sample_weight=sample_weight)
            y_pred = ops.softmax(ops.cast(y_pred["logits"], "float32"), axis=-1)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with working defaults: every argument may be left out.

        Args:
            optimizer: ``"auto"``: Adam (1e-3); with a Partial FC head, SGD
                (0.05, Nesterov momentum 0.9; on TensorFlow `PartialSGD`,
                which leaves unsampled centers and their momentum alone).
                Defaults to `"auto"`.
            loss: ``"auto"``: softmax cross-entropy of the margin logits
                (`losses.PartialFCCrossentropy` for a Partial FC head).
                Defaults to `"auto"`.
            metrics: ``"auto"``: accuracy (without the margin); none with a
                Partial FC head, whose training steps never score every
                class (`evaluate` and `predict` do). Defaults to `"auto"`.
            **kwargs: the other arguments of `keras.Model.compile`.
        """
        if optimizer == "auto":
            if self.head.partial:  # on TensorFlow the row-sparse PartialSGD: unsampled centers stay as they are
                from arcface_keras.optimizers import PartialSGD

                sgd = PartialSGD if keras.backend.backend() == "tensorflow" else keras.optimizers.SGD
                optimizer = sgd(0.05, momentum=0.9, nesterov=True)
            else:
                optimizer = keras.optimizers.Adam(1e-3)
        if loss == "auto":
            if self.head.partial:
                from arcface_keras.losses import PartialFCCrossentropy

                loss = PartialFCCrossentropy()
            else:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = None if self.head.partial else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        elif metrics and self.head.partial:
            raise ValueError("A Partial FC head (sample_rate < 1) scores a sample of the classes in training, so "
                             "compiled metrics have nothing to score; measure with `predict` or `evaluate`'s loss. "
                             f"Received: metrics={metrics!r}")
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        """Compile a loaded model as it was compiled when saved."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)  # its saved state is loaded next

    def embed(self, x, batch_size=None, verbose="auto", steps=None):
        """Unit-norm embeddings (B, D) of images `x` (anything `predict` takes)."""
        return self.embedder.predict(x, batch_size=batch_size, verbose=verbose, steps=steps)

    @property
    def embedder(self):
        """A functional model from images to unit embeddings, sharing this model's weights."""
        if getattr(self, "_embedder", None) is None:
            inputs = getattr(self.backbone, "inputs", None)
            if not inputs:
                raise ValueError("`embedder` needs a backbone with known inputs (a functional or Sequential model "
                                 "built on keras.Input).")
            images = keras.Input(batch_shape=inputs[0].shape, dtype=inputs[0].dtype, name="image")
            embeddings = layers.UnitNormalization(dtype="float32", name="embedding")(
                ops.cast(self._embeddings(images, training=False), "float32"))
            # Not tracked as a sublayer: its layers are this model's, saved once with it.
            object.__setattr__(self, "_embedder", keras.Model(images, embeddings, name="embedder"))
        return self._embedder

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "head": keras.saving.serialize_keras_object(self.head),
            "embedding_dim": self.embedding_dim,
            "pooling": self.pooling,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)
