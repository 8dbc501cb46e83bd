"""Backbone + head → the model a run trains, and its label-free inference model.

A margin head's run trains an `ArcFaceClassifier` (labels reach the head in
its `compute_loss`, so it fits plain ``(images, labels)``); the triplet run
is the same task with a frozen cosine head, and fits its `embedder`; the
softmax baseline is a plain functional classifier. Each starts from raw
images (0–255): normalisation by the data set's mean and std is the first
layer (``normalize``), then the feature extractor (``backbone``, which ends
in the embedding). The inference model takes raw images and returns
``embedding`` (unit norm) and ``probabilities``, sharing every weight.

Run folders made before the task existed hold a two-input functional model
(``[images, labels]``); `parts` and everything built on it read both.
"""

import keras
import numpy as np
from keras import layers

from arcface_keras import backbones
from arcface_keras.layers import AngularMarginLayer, ArcMarginLayer, CosMarginLayer, SphereMarginLayer
from arcface_keras.tasks import ArcFaceClassifier
from arcface_keras.tta import HorizontalFlip, Translate

MARGIN_HEADS = {"arcface": ArcMarginLayer, "cosface": CosMarginLayer, "sphereface": SphereMarginLayer}
from arcface_keras.catalog import LOSSES  # noqa: E402
# The training recipe's margins (the layers keep the papers' defaults): smaller
# than face recognition's, for few classes and training from scratch. The
# triplet margin is FaceNet's, for unit embeddings and squared distances.
RECIPE_MARGINS = {"arcface": 0.3, "cosface": 0.2, "sphereface": 1.35, "triplet": 0.2}


def build_models(
    num_classes,
    image_shape,
    mean,
    std,
    loss="arcface",
    backbone="network",
    embedding_dim=128,
    scale=None,
    margin=None,
    sub_centers=1,
    fixed_centers=False,
    easy_margin=False,
    backbone_options=None,
    flip_test=False,
    translate_test=False,
    weights=None,
    latent_dim=None,
    sample_rate=1.0,
    seed=None,
):
    """Build ``(train_model, inference_model)`` sharing one set of weights.

    The training model is an `ArcFaceClassifier` for the margin heads and
    the triplet loss (its backbone is the ``encoder``: ``normalize``, then
    ``backbone``), a functional classifier for softmax.

    Args:
        num_classes: number of classes.
        image_shape: (H, W, C) of the raw images.
        mean, std: per-channel statistics in [0, 1] units.
        loss: ``arcface``, ``cosface``, ``sphereface``, ``softmax`` or
            ``triplet``. For ``triplet`` the head is a frozen cosine head
            whose centers `set_class_centers` fills from training embeddings
            (classification by nearest class center); the model to fit is
            `embedding_model(train_model)`. Defaults to `"arcface"`.
        backbone: a name of `backbones.BACKBONES` or any `keras.Model`
            (image → feature map or vector; it receives normalised images).
            Defaults to `"network"`.
        embedding_dim: embedding size. Defaults to `128`.
        scale: of the margin head; `None` takes the layer's default.
        margin: of the margin head; `None` takes `RECIPE_MARGINS[loss]`.
        sub_centers: centers per class of the margin head. Defaults to `1`.
        fixed_centers: keep the margin head's class centers fixed
            (orthogonal); see `AngularMarginLayer`. Defaults to `False`.
        easy_margin: the margin head's `easy_margin`. Defaults to `False`.
        backbone_options: extra keyword arguments of the backbone.
        flip_test: the inference model uses the flip test (see `inference_model`).
        translate_test: the inference model adds one-pixel shifts (see `inference_model`).
        weights: of a pretrained backbone: ``imagenet`` (its default), ``none``
            or a ``.weights.h5`` path. Pretrained backbones take raw pixels:
            `mean` and `std` are then not applied.
        sample_rate: the margin head's Partial FC rate (see
            `AngularMarginLayer`); below 1 the training model returns partial
            logits for `losses.PartialFCCrossentropy`. Defaults to `1.0`.
        seed: seed of the margin head's class sampling. Defaults to `None`.
    """
    if latent_dim is not None:  # the name before 0.2
        embedding_dim = latent_dim
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")
    if backbones.pretrained.is_pretrained(backbone):  # its own preprocessing is inside it
        mean, std = (0.0,) * image_shape[-1], (1 / 255.0,) * image_shape[-1]
    images = keras.Input(image_shape, name="image")
    normalized = layers.Normalization(
        mean=[255.0 * m for m in mean], variance=[(255.0 * s) ** 2 for s in std], name="normalize"
    )(images)
    extractor = backbones.build(backbone, image_shape, embedding_dim, weights=weights, **(backbone_options or {}))
    embeddings = extractor(normalized)
    if loss == "softmax":
        head = layers.Dense(num_classes, dtype="float32", name="head")
        train_model = keras.Model(images, head(embeddings), name="softmax")
    else:
        if loss == "triplet":
            head = AngularMarginLayer(num_classes, scale=16.0 if scale is None else scale, m2=0.0, name="head",
                                      trainable=False)
        else:
            margin = RECIPE_MARGINS[loss] if margin is None else margin
            options = {"margin": margin} if scale is None else {"margin": margin, "scale": scale}
            if sample_rate < 1:
                options.update(sample_rate=sample_rate, seed=seed)
            head = MARGIN_HEADS[loss](num_classes, sub_centers=sub_centers, fixed_centers=fixed_centers,
                                      easy_margin=easy_margin, name="head", **options)
        encoder = keras.Model(images, embeddings, name="encoder")
        train_model = ArcFaceClassifier(encoder, num_classes, head=head, embedding_dim=None, name=loss)
    return train_model, inference_model(train_model, flip_test=flip_test, translate_test=translate_test)


def parts(model):
    """``(normalize, backbone, head)`` of a model from `build_models`: the
    normalisation layer, the feature extractor (images → embedding, before
    unit norm) and the head. Reads the two-input functional models of run
    folders made before `ArcFaceClassifier` as well."""
    if isinstance(model, ArcFaceClassifier):
        return model.backbone.get_layer("normalize"), model.backbone.get_layer("backbone"), model.head
    return model.get_layer("normalize"), model.get_layer("backbone"), model.get_layer("head")


def _image_input(model):
    """A new image input of `model`'s image shape and dtype."""
    source = (model.backbone if isinstance(model, ArcFaceClassifier) else model).inputs[0]
    return keras.Input(batch_shape=source.shape, dtype=source.dtype, name="image")


def inference_model(train_model, flip_test=False, translate_test=False):
    """The label-free model of a training model: images → embedding, probabilities.

    Args:
        train_model: a model from `build_models`.
        flip_test: average the backbone's embedding of each image with that of
            its mirror image before the head, as in the ArcFace paper's
            evaluation. Costs two backbone passes. Defaults to `False`.
        translate_test: also embed the image shifted by one pixel up-left and
            down-right (airbench's test-time augmentation): the embedding is
            ½ unshifted + ¼ each shift (each with its mirror under
            `flip_test`). Costs 3× the passes. Defaults to `False`.
    """
    images = _image_input(train_model)
    normalize, backbone, head = parts(train_model)

    def views(pixels, name):
        embedding = backbone(normalize(pixels))
        if not flip_test:
            return embedding
        mirrored = backbone(normalize(HorizontalFlip(name=f"{name}flip")(pixels)))
        return layers.Average(name=f"{name}flip_average")([embedding, mirrored])

    embeddings = views(images, "")
    if translate_test:
        shifted = [views(Translate(offset, name=f"translate{sign}")(images), f"translate{sign}_")
                   for offset, sign in ((-1, "_up"), (1, "_down"))]
        shifted = layers.Average(name="translate_average")(shifted)
        embeddings = layers.Average(name="tta_average")([embeddings, shifted])
    logits = head(embeddings)
    outputs = {
        "embedding": layers.UnitNormalization(dtype="float32", name="embedding")(embeddings),
        "probabilities": layers.Softmax(dtype="float32", name="probabilities")(logits),
    }
    return keras.Model(images, outputs, name="inference")


def adapt_whitening(train_model, images, count=5000):
    """Fit every `PatchWhitening` layer of the backbone to the first `count` training images.

    Returns whether the backbone has one. The images go through the model's
    normalisation first, as in training.
    """
    from arcface_keras.whitening import PatchWhitening

    normalize, backbone, _ = parts(train_model)
    whitening = [layer for layer in backbone.layers if isinstance(layer, PatchWhitening)]
    if not whitening:
        return False
    from arcface_keras.toolkit.data import image_batches  # arrays and image folders (`ImageFiles`) alike

    pixels = np.concatenate([np.asarray(batch) for batch in image_batches(images[:count], batch_size=500)])
    normalized = keras.ops.convert_to_numpy(normalize(pixels))
    for layer in whitening:  # the first layer of the backbone: it sees the normalised images
        layer.adapt(normalized)
    return True


def embedding_model(train_model):
    """images → unit embedding: the model a triplet loss trains."""
    images = _image_input(train_model)
    normalize, backbone, _ = parts(train_model)
    embeddings = backbone(normalize(images))
    return keras.Model(images, layers.UnitNormalization(dtype="float32", name="embedding")(embeddings), name="embedding")


def set_class_centers(train_model, embeddings, labels):
    """Point each class's column of the head at its mean unit embedding."""
    import numpy as np

    from sklearn.preprocessing import normalize

    unit = normalize(np.asarray(embeddings, dtype="float64"))
    head = parts(train_model)[2]
    centers = np.stack([unit[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(unit.shape[1])
                        for c in range(head.num_classes)], axis=1)
    head.kernel.assign(centers.astype("float32"))


def predict(model, images, batch_size=100):
    """`model`'s outputs over `images` (a uint8 array or `ImageFiles`), in
    batches; a dict of NumPy arrays for a dict-output model, else one array."""
    from arcface_keras.toolkit import distributed
    from arcface_keras.toolkit.data import image_batches

    if distributed.is_multi_worker(model):
        outputs = distributed.local_predict(model, image_batches(images, batch_size))
    else:
        outputs = model.predict(image_batches(images, batch_size), verbose=0)
    return {k: np.asarray(v) for k, v in outputs.items()} if isinstance(outputs, dict) else np.asarray(outputs)


def class_centers(train_model):
    """The class centers (D, C·K) of a margin head, or the Dense kernel."""
    return keras.ops.convert_to_numpy(parts(train_model)[2].kernel)
