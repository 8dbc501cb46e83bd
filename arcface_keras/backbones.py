"""Feature extractors: image (already normalised) → embedding of `embedding_dim`.

Each is a functional `keras.Model` named ``backbone``; every layer has a name
and follows the global dtype policy, so mixed precision is one switch. Both end
in ``Dense(embedding_dim)`` followed by batch normalisation of the embedding (the
"BN-FC-BN" output of the ArcFace paper), which keeps the embedding centered so
its angle to the class centers means something from the first step.
"""

import keras
from keras import layers

from arcface_keras import pretrained
from arcface_keras.errors import ArgumentError
from arcface_keras.normalization import FusedBatchNormalization
from arcface_keras.whitening import Dirac, PatchWhitening

from arcface_keras.catalog import BACKBONES, OWN_BACKBONES  # noqa: E402,F401  (names live in the Keras-free catalog)


def build(name, input_shape, embedding_dim=128, weights=None, latent_dim=None, **options):
    """The backbone called `name`: one of ours (``network``, ``resnet``,
    ``fastnet``, trained from scratch), a `keras.applications` model (see
    `arcface_keras.pretrained`; `weights` defaults to ``imagenet``), or any
    `keras.Model` given as `name` (image → feature map or vector)."""
    if latent_dim is not None:  # the name before 0.2
        embedding_dim = latent_dim
    if not isinstance(embedding_dim, int) or embedding_dim < 2:
        raise ArgumentError(f"`embedding_dim` must be an integer ≥ 2. Received: embedding_dim={embedding_dim!r}")
    if isinstance(name, keras.Model):
        return pretrained.from_model(name, input_shape, embedding_dim, **options)
    if name not in BACKBONES:
        raise ArgumentError(f"`backbone` must be one of {BACKBONES} or a keras.Model. Received: backbone={name!r}")
    if pretrained.is_pretrained(name):
        return pretrained.backbone(name, input_shape, embedding_dim, weights="imagenet" if weights is None else weights,
                                   **options)
    if weights not in (None, "none"):
        raise ArgumentError(f"`weights` applies to pretrained backbones only; {name} trains from scratch. "
                         f"Received: weights={weights!r}")
    return _BUILDERS[name](input_shape, embedding_dim, **options)


def option_names(name):
    """The keyword options the backbone called `name` takes (beyond shape and size)."""
    import inspect

    function = pretrained.backbone if pretrained.is_pretrained(name) else _BUILDERS[name]
    parameters = inspect.signature(function).parameters
    return tuple(p for p in parameters if p not in ("name", "input_shape", "embedding_dim", "weights"))


def _embedding(features, embedding_dim, momentum, embedding_bn, projection=True):
    x = layers.Dense(embedding_dim, use_bias=not embedding_bn, name="embedding_dense")(features) if projection else features
    return FusedBatchNormalization(momentum=momentum, name="embedding_bn")(x) if embedding_bn else x


def _conv_bn_relu(x, filters, name, strides=1, momentum=0.9):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def network(input_shape, embedding_dim=128, widths=(64, 256, 64), convs_per_block=1, bn_momentum=0.9, embedding_bn=True):
    """The source report's "Network": conv blocks that widen then narrow.

    Each block is ``convs_per_block`` × (3×3 conv, batch norm, ReLU) followed
    by 2×2 max pooling while the feature map is larger than 2×2; the result is
    flattened and projected to `embedding_dim`.

    Args:
        input_shape: (H, W, C) of the images, C = 1 or 3.
        embedding_dim: embedding size. Defaults to `128`.
        widths: filters of each block. Defaults to `(64, 256, 64)`.
        convs_per_block: conv layers per block. Defaults to `1`.
        bn_momentum: batch-norm momentum; 0.9 lets the moving statistics
            keep up with a fast-changing network. Defaults to `0.9`.
        embedding_bn: batch-normalise the embedding. Defaults to `True`.
    """
    _check_integers("widths", widths, sequence=True)
    _check_integers("convs_per_block", convs_per_block)
    images = keras.Input(input_shape, name="image")
    x = images
    for block, filters in enumerate(widths, start=1):
        for conv in range(1, convs_per_block + 1):
            x = _conv_bn_relu(x, filters, f"block{block}_{conv}", momentum=bn_momentum)
        if x.shape[1] > 2 and x.shape[2] > 2:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(images, _embedding(x, embedding_dim, bn_momentum, embedding_bn), name="backbone")


def resnet(input_shape, embedding_dim=128, depth=20, width=16, bn_momentum=0.9, embedding_bn=True):
    """A CIFAR ResNet (He et al. 2016, section 4.2): 3 stages of basic blocks.

    `depth` = 6n + 2 (20, 32, 44, 56, ...); stage widths are `width`, 2×, 4×.
    Global average pooling, then the embedding.

    Args:
        input_shape: (H, W, C) of the images.
        embedding_dim: embedding size. Defaults to `128`.
        depth: 6n + 2 layers. Defaults to `20`.
        width: filters of the first stage. Defaults to `16`.
        bn_momentum: batch-norm momentum. Defaults to `0.9`.
        embedding_bn: batch-normalise the embedding. Defaults to `True`.
    """
    _check_integers("width", width)
    if not isinstance(depth, int) or isinstance(depth, bool) or (depth - 2) % 6 != 0 or depth < 8:
        raise ArgumentError(f"`depth` must be 6n + 2 (8, 14, 20, 32, ...). Received: depth={depth!r}")
    blocks = (depth - 2) // 6
    images = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(images, width, "stem", momentum=bn_momentum)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            name = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = _conv_bn_relu(x, filters, f"{name}_a", strides=strides, momentum=bn_momentum)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
            y = FusedBatchNormalization(momentum=bn_momentum, name=f"{name}_b_bn")(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
                shortcut = FusedBatchNormalization(momentum=bn_momentum, name=f"{name}_proj_bn")(shortcut)
            x = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(images, _embedding(x, embedding_dim, bn_momentum, embedding_bn), name="backbone")


def fastnet(input_shape, embedding_dim=128, widths=(32, 128, 256), stem=24, bn_momentum=0.9, embedding_bn=True,
            whiten=0, activation="relu", dirac=False, bn_scale=True, projection=True, layout="channels_last"):
    """A compact VGG-style net chosen for accuracy per second of CPU.

    After the designs of fast CIFAR-10 training (Page's ResNet-9, Jordan's
    airbench): a 3×3 stem, then per block 3×3 conv → 2×2 max pooling →
    batch norm → activation → 3×3 conv → batch norm → activation, global max
    pooling, then the embedding (``Dense`` and batch norm). Few, wide layers
    on shrinking maps: with the default widths it has 4× the parameters of
    ResNet-20 and trains as fast on a 2-core CPU (measured in the README).
    `whiten`, `activation`, `dirac`, `bn_scale` and `projection` are
    airbench's; docs/recipes.md measures each.

    Args:
        input_shape: (H, W, C) of the images.
        embedding_dim: embedding size. Defaults to `128`.
        widths: filters of each block. Defaults to `(32, 128, 256)`.
        stem: filters of the stem convolution (unused with `whiten`). Defaults to `24`.
        bn_momentum: batch-norm momentum. Defaults to `0.9`.
        embedding_bn: batch-normalise the embedding. Defaults to `True`.
        whiten: k > 0 replaces the stem by a k×k patch-whitening convolution
            (`whitening.PatchWhitening`, fixed filters from the training
            images) and the activation. Defaults to `0` (off).
        activation: "relu" or "gelu". Defaults to `"relu"`.
        dirac: start the 3×3 convolutions as the identity on their first
            channels (`whitening.Dirac`). Defaults to `False`.
        bn_scale: batch norm learns a scale γ (False: only the shift β). Defaults to `True`.
        projection: end in ``Dense(embedding_dim)``; False: the pooled
            features are the embedding, as airbench feeds its linear head
            (then `embedding_dim` must equal the last width). Defaults to `True`.
        layout: the memory layout of the convolution stack, "channels_last"
            or "channels_first"; the images are (H, W, C) either way
            ("channels_first" transposes them once, at the input). Same
            weights, same results; on PyTorch "channels_first" spares Keras'
            per-layer transposes and trains faster on the CPU
            (docs/benchmarks.md). Defaults to `"channels_last"`.
    """
    _check_integers("widths", widths, sequence=True)
    _check_integers("stem", stem)
    if not projection and embedding_dim != widths[-1]:
        raise ArgumentError(f"fastnet with projection false embeds the pooled features: `embedding_dim` must equal the "
                         f"last width ({widths[-1]}). Received: embedding_dim={embedding_dim!r}")
    if activation not in ("relu", "gelu"):
        raise ArgumentError(f"`activation` must be 'relu' or 'gelu'. Received: activation={activation!r}")
    if not isinstance(whiten, int) or isinstance(whiten, bool) or whiten < 0:
        raise ArgumentError(f"`whiten` must be an integer ≥ 0 (0: off). Received: whiten={whiten!r}")
    if layout not in ("channels_last", "channels_first"):
        raise ArgumentError(f"`layout` must be 'channels_last' or 'channels_first'. Received: layout={layout!r}")
    first = layout == "channels_first"
    unit = dict(momentum=bn_momentum, activation=activation, dirac=dirac, bn_scale=bn_scale, data_format=layout)
    images = keras.Input(input_shape, name="image")
    x = layers.Permute((3, 1, 2), name="to_channels_first")(images) if first else images
    if whiten:
        x = PatchWhitening(whiten, data_format=layout, name="whiten")(x)
        x = _activation(x, activation, "whiten")
    else:
        x = _conv_bn_act(x, stem, "stem", **unit)
    for block, filters in enumerate(widths, start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, data_format=layout, name=f"block{block}_a_conv",
                          kernel_initializer=Dirac() if dirac else "glorot_uniform")(x)
        height, width = x.shape[2:4] if first else x.shape[1:3]
        if height > 1 and width > 1:
            x = layers.MaxPooling2D(2, data_format=layout, name=f"block{block}_pool")(x)
        x = FusedBatchNormalization(axis=1 if first else -1, momentum=bn_momentum, scale=bn_scale,
                                    name=f"block{block}_a_bn")(x)
        x = _activation(x, activation, f"block{block}_a")
        x = _conv_bn_act(x, filters, f"block{block}_b", **unit)
    x = layers.GlobalMaxPooling2D(data_format=layout, name="pool")(x)
    return keras.Model(images, _embedding(x, embedding_dim, bn_momentum, embedding_bn, projection), name="backbone")


def _check_integers(name, value, sequence=False):
    """`value` is an integer ≥ 1, or with `sequence` a non-empty list of them."""
    values = value if sequence and isinstance(value, (list, tuple)) else [value]
    if (sequence and not isinstance(value, (list, tuple))) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        expected = "a list of one or more integers ≥ 1" if sequence else "an integer ≥ 1"
        raise ArgumentError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _activation(x, activation, name):
    if activation == "relu":  # the layer name every stored relu model has
        return layers.ReLU(name=f"{name}_relu")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def _conv_bn_act(x, filters, name, momentum, activation, dirac, bn_scale, data_format="channels_last"):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, data_format=data_format, name=f"{name}_conv",
                      kernel_initializer=Dirac() if dirac else "glorot_uniform")(x)
    x = FusedBatchNormalization(axis=1 if data_format == "channels_first" else -1, momentum=momentum, scale=bn_scale,
                                name=f"{name}_bn")(x)
    return _activation(x, activation, name)


_BUILDERS = {"network": network, "resnet": resnet, "fastnet": fastnet}
