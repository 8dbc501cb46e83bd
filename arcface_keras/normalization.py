"""Batch normalization whose training step is one fused kernel on TensorFlow and PyTorch.

Keras 3's `BatchNormalization` computes the batch moments and the affine
transform with separate ops (`ops.moments`, then subtract, multiply, add) on
every backend, in float32 even under a mixed policy. On the CPU that is
most of a small convolutional net's time beside its convolutions
(docs/benchmarks.md measures it). `FusedBatchNormalization` is the same layer
(same arguments, weights, moving statistics and inference path) whose
training call hands the whole transform to the backend's own kernel:
`tf.compat.v1.nn.fused_batch_norm` on TensorFlow (4-D input, channels last
or first), `torch.nn.functional.batch_norm` on PyTorch (any rank ≥ 2). Any
other case (JAX, whose XLA compiler fuses the ops itself; a mask;
`synchronized`; another axis; a single value per channel) runs Keras' own
code, so the layer is never wrong where the fast path does not apply.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="arcface_keras")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused training kernel on TensorFlow and PyTorch.

    Takes `keras.layers.BatchNormalization`'s arguments and keeps its
    contract: in training the batch mean and (biased) variance normalise
    the input and update the moving statistics as
    `moving = moving * momentum + batch * (1 - momentum)`; in inference the
    moving statistics normalise it (Keras' own code). The statistics are
    computed in float32 under a mixed policy, as Keras does, and the output
    has the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> layer = FusedBatchNormalization(momentum=0.5)
    >>> x = np.arange(24, dtype="float32").reshape(2, 2, 2, 3)
    >>> y = layer(x, training=True)
    >>> print(np.round(keras.ops.convert_to_numpy(layer.moving_mean), 2))
    [5.5 6.  6.5]
    """

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and mask is None and not self.synchronized:
            fused = _fused_call(self, inputs)
            if fused is not None:
                return fused
        return super().call(inputs, training=training, mask=mask)


def _channel_axis(layer, rank):
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    return None if axis is None else axis % rank


def _affine(layer, channels):
    gamma = ops.cast(layer.gamma, "float32") if layer.scale else ops.ones((channels,), "float32")
    beta = ops.cast(layer.beta, "float32") if layer.center else ops.zeros((channels,), "float32")
    return gamma, beta


def _update(layer, mean, variance):
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + ops.cast(mean, layer.moving_mean.dtype) * (1.0 - momentum))
    layer.moving_variance.assign(
        layer.moving_variance * momentum + ops.cast(variance, layer.moving_variance.dtype) * (1.0 - momentum))


def _fused_call(layer, inputs):
    """The normalised batch by the backend's fused kernel (moving statistics
    updated), or None where that kernel does not apply."""
    backend = keras.backend.backend()
    rank = len(inputs.shape)
    axis = _channel_axis(layer, rank)
    if axis is None:
        return None
    if backend == "tensorflow" and rank == 4 and axis in (1, 3):
        return _tensorflow(layer, inputs, axis)
    if backend == "torch" and rank >= 2:
        return _torch(layer, inputs, axis)
    return None


def _tensorflow(layer, inputs, axis):
    import tensorflow as tf

    channels = inputs.shape[axis]
    dtype = inputs.dtype if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16) else tf.float32
    x = tf.cast(inputs, dtype)
    gamma, beta = _affine(layer, channels)
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=layer.epsilon, data_format="NHWC" if axis == 3 else "NCHW", is_training=True)
    # The kernel returns the unbiased variance; Keras' moving variance is built from the biased one.
    count = tf.cast(tf.size(x) // channels, tf.float32)
    _update(layer, mean, variance * (count - 1.0) / tf.maximum(count, 1.0))
    return tf.cast(outputs, layer.compute_dtype)


def _torch(layer, inputs, axis):
    import torch

    channels = inputs.shape[axis]
    if inputs.numel() // max(channels, 1) < 2:  # torch refuses one value per channel; Keras gives variance 0
        return None
    x = inputs if axis == 1 else torch.movedim(inputs, axis, 1)  # a view: no copy
    if not x.is_floating_point():
        x = x.float()
    gamma, beta = (None if not flag else ops.cast(weight, "float32")
                   for flag, weight in ((layer.scale, layer.gamma), (layer.center, layer.beta)))
    # momentum=1 leaves the batch's mean and unbiased variance in the two buffers.
    mean = torch.zeros(channels, dtype=torch.float32, device=x.device)
    variance = torch.ones(channels, dtype=torch.float32, device=x.device)
    outputs = torch.nn.functional.batch_norm(x, mean, variance, gamma, beta, training=True, momentum=1.0,
                                             eps=layer.epsilon)
    count = x.numel() // channels
    _update(layer, mean, variance * ((count - 1) / count))
    outputs = outputs if axis == 1 else torch.movedim(outputs, 1, axis)
    return outputs.to(getattr(torch, layer.compute_dtype))
