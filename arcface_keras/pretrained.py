"""Pretrained backbones from `keras.applications`, and how they are fine-tuned.

A pretrained backbone takes raw pixels (0–255): each application's own
preprocessing sits inside it (its ``include_preprocessing`` layers, or a
Rescaling for ResNet50V2), grayscale images are repeated to three channels,
and on top come global average pooling, dropout, ``Dense(embedding_dim)`` and
batch normalisation (the BN-FC-BN embedding of the ArcFace paper).

Fine-tuning follows the Keras transfer-learning guide: with ImageNet (or
saved) weights the application's batch-norm layers are set
``trainable=False``, which in Keras 3 keeps them in inference mode (moving
statistics used, not updated; γ and β fixed) even once the rest is unfrozen. Freezing and
a smaller learning rate for the pretrained part are one mechanism, a
`GradientScale` between the application and the new layers: its factor is
0 for ``freeze_backbone_epochs`` epochs, then ``backbone_lr_factor``
(`BackboneSchedule`). With SGD a gradient scaled by f is a learning rate
scaled by f; the pretrained weights are kept out of weight decay, so a
frozen backbone does not move at all.
"""

import os

import keras
from keras import layers

from arcface_keras.errors import ArgumentError, UserInputError

# name → (keras.applications constructor, whether it has include_preprocessing,
#         what its no-top ImageNet weights file in ~/.keras/models/ is called, in part)
APPLICATIONS = {
    "mobilenet_v3_small": ("MobileNetV3Small", True, "mobilenet_v3_small"),
    "mobilenet_v3_large": ("MobileNetV3Large", True, "mobilenet_v3_large"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", True, "efficientnetv2-b0"),
    "resnet50_v2": ("ResNet50V2", False, "resnet50v2"),
    "convnext_tiny": ("ConvNeXtTiny", True, "convnext_tiny"),
}
WEIGHT_CHOICES = "imagenet, none or a .weights.h5 path"
GRADIENT_LAYER = "backbone_gradient"


@keras.saving.register_keras_serializable(package="arcface_keras")
class GradientScale(layers.Layer):
    """Identity forward; multiplies the gradient flowing back by ``factor``.

    ``y = f·x + stop_gradient((1 − f)·x)`` equals x, and its gradient is f.
    ``factor`` is a non-trainable variable, so a callback changes it during
    `fit` without recompiling.
    """

    def build(self, input_shape):
        self.factor = self.add_weight(name="factor", shape=(), initializer="ones", trainable=False)

    def call(self, inputs):
        factor = keras.ops.cast(self.factor, inputs.dtype)
        return factor * inputs + keras.ops.stop_gradient((1.0 - factor) * inputs)


@keras.saving.register_keras_serializable(package="arcface_keras")
class GrayscaleToRGB(layers.Layer):
    """Repeat a one-channel image to three channels (pretrained nets take RGB)."""

    def call(self, images):
        return keras.ops.repeat(images, 3, axis=-1)


class BackboneSchedule(keras.callbacks.Callback):
    """Sets the `GradientScale` factor each epoch: 0 before `freeze_epochs`, then `lr_factor`."""

    def __init__(self, gradient_layer, freeze_epochs=0, lr_factor=1.0):
        super().__init__()
        self.gradient_layer, self.freeze_epochs, self.lr_factor = gradient_layer, freeze_epochs, lr_factor

    def on_epoch_begin(self, epoch, logs=None):
        self.gradient_layer.factor.assign(0.0 if epoch < self.freeze_epochs else self.lr_factor)


def is_pretrained(name):
    return isinstance(name, str) and name in APPLICATIONS


def backbone(name, input_shape, embedding_dim=128, weights="imagenet", dropout=0.2, bn_momentum=0.9):
    """The `keras.applications` model `name` as a backbone (raw pixels → embedding).

    Args:
        name: a key of `APPLICATIONS`.
        input_shape: (H, W, C), C = 1 or 3.
        embedding_dim: embedding size. Defaults to `128`.
        weights: ``imagenet``, ``none`` or the path of a ``.weights.h5`` file
            of the application built with ``include_top=False``.
            Defaults to `"imagenet"`.
        dropout: dropout rate before the embedding layer. Defaults to `0.2`.
        bn_momentum: momentum of the embedding's batch norm, and of the
            application's batch norms when it trains from scratch
            (``weights="none"``). Defaults to `0.9`.
    """
    constructor, has_preprocessing, _ = APPLICATIONS[name]
    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ArgumentError(f"pretrained backbones take 1 or 3 channels. Received: input_shape={tuple(input_shape)}")
    options = {"include_top": False, "input_shape": (height, width, 3), "weights": _weights_argument(name, weights)}
    if has_preprocessing:
        options["include_preprocessing"] = True
    try:
        application = getattr(keras.applications, constructor)(**options)
    except ValueError as error:  # keras.applications checks the input shape (e.g. its minimum size) this way
        raise ArgumentError(f"{constructor} cannot take these images: {error}") from None
    if weights not in ("imagenet", "none", None):
        try:
            application.load_weights(weights)
        except (OSError, ValueError, KeyError) as error:  # h5py: OSError; Keras: ValueError on other shapes
            raise UserInputError(f"--weights {weights!r} does not load into {constructor}(include_top=False): {error}") from None
    images = keras.Input(input_shape, name="image")
    x = GrayscaleToRGB(name="to_rgb")(images) if channels == 1 else images
    if not has_preprocessing:
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)  # resnet_v2.preprocess_input
    if weights in ("none", None):
        # keras.applications use batch-norm momentum 0.999 (ImageNet-length runs): from scratch on a
        # short run the moving statistics lag far behind and inference-mode accuracy sits at chance.
        for layer in application.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = bn_momentum
    else:
        # Keras 3 overrides a functional node's training=False with fit's training=True; a batch norm
        # with trainable=False runs in inference mode instead, whatever the call says.
        for layer in application.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False
    x = application(x)
    x = GradientScale(name=GRADIENT_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="embedding_bn")(x)
    return keras.Model(images, x, name="backbone")


def from_model(model, input_shape, embedding_dim=128, bn_momentum=0.9):
    """Any `keras.Model` (image → feature map or vector) as a backbone: its
    output, average-pooled if it is a map, then ``Dense(embedding_dim)`` and batch norm."""
    images = keras.Input(input_shape, name="image")
    x = model(images)
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    elif len(x.shape) != 2:
        raise ArgumentError(f"a backbone model must return (B, H, W, C) or (B, D). Received: {tuple(x.shape)}")
    x = layers.Dense(embedding_dim, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="embedding_bn")(x)
    return keras.Model(images, x, name="backbone")


def pretrained_variables(backbone_model):
    """The variables of the application inside a backbone built by `backbone`."""
    inner = [layer for layer in backbone_model.layers if isinstance(layer, keras.Model)]
    return [v for layer in inner for v in layer.variables]


def _weights_argument(name, weights):
    if weights in ("none", None):
        return None
    if weights != "imagenet":
        if not os.path.isfile(weights):
            raise UserInputError(f"--weights must be {WEIGHT_CHOICES}. Received: {weights!r} (no such file)")
        return None  # built empty, loaded by the caller
    if not _cached(name) and not _network_available():
        raise UserInputError(
            f"cannot download the ImageNet weights of {name}: no network. Pass --weights PATH (a .weights.h5 of "
            f"keras.applications.{APPLICATIONS[name][0]}(include_top=False), saved where there is network) "
            "or --weights none."
        )
    return "imagenet"


def _cached(name):
    folder = os.path.join(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "models")
    part = APPLICATIONS[name][2]
    return os.path.isdir(folder) and any(part in entry.lower() and ("notop" in entry.lower() or "no_top" in entry.lower())
                                         for entry in os.listdir(folder))


def _network_available():
    from arcface_keras.network import network_available

    return network_available("storage.googleapis.com")
