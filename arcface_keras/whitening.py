"""Two initialisations from fast CIFAR-10 training (Jordan's airbench, 2024).

`PatchWhitening` is a first convolution whose filters whiten the k×k image
patches of the training data (the eigenvectors of their covariance, each
scaled by 1/√eigenvalue, and their negatives), fixed after `adapt`; only
its bias trains. `Dirac` starts a 3×3 convolution as the identity on its
first input channels (an implicit residual connection).
"""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="arcface_keras")
class PatchWhitening(keras.layers.Layer):
    """A k×k 'valid' convolution with 2·k²·C fixed whitening filters and a trained bias.

    Call `adapt(images)` with (normalised) training images before training;
    until then the filters are zero. The output is (H−k+1, W−k+1, 2·k²·C).

    Args:
        kernel_size: patch size k. Defaults to `2`.
        epsilon: added to each eigenvalue before the square root. Defaults to `5e-4`.
        data_format: "channels_last" (N, H, W, C) or "channels_first"
            (N, C, H, W) input and output; `adapt` always takes (N, H, W, C)
            images. Defaults to `keras.config.image_data_format()`.
    """

    def __init__(self, kernel_size=2, epsilon=5e-4, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.epsilon = float(epsilon)
        self.data_format = keras.config.image_data_format() if data_format is None else data_format
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError("`data_format` must be 'channels_last' or 'channels_first'. "
                             f"Received: data_format={data_format!r}")

    def build(self, input_shape):
        channels = input_shape[1] if self.data_format == "channels_first" else input_shape[-1]
        k = self.kernel_size
        self.kernel = self.add_weight(shape=(k, k, channels, 2 * k * k * channels), initializer="zeros",
                                      trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(2 * k * k * channels,), initializer="zeros", name="bias")

    def call(self, images):
        outputs = keras.ops.conv(images, keras.ops.cast(self.kernel, images.dtype), padding="valid",
                                 data_format=self.data_format)
        bias = keras.ops.cast(self.bias, images.dtype)
        return outputs + (keras.ops.reshape(bias, (-1, 1, 1)) if self.data_format == "channels_first" else bias)

    def adapt(self, images, epsilon=None):
        """Set the filters from (N, H, W, C) images: patch covariance → scaled eigenvectors."""
        images = np.asarray(images, dtype=np.float64)
        if not self.built:
            n, h, w, c = images.shape
            self.build((n, c, h, w) if self.data_format == "channels_first" else images.shape)
        k, channels = self.kernel_size, images.shape[-1]
        patches = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))  # N, H', W', C, k, k
        patches = np.moveaxis(patches, 3, -1).reshape(-1, k * k * channels)  # flattened as (kh, kw, C)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        scaled = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + (self.epsilon if epsilon is None else epsilon))
        kernel = np.concatenate([scaled, -scaled], axis=1).reshape(k, k, channels, 2 * k * k * channels)
        self.kernel.assign(kernel.astype("float32"))

    def compute_output_shape(self, input_shape):
        k = self.kernel_size
        first = self.data_format == "channels_first"
        channels = input_shape[1] if first else input_shape[-1]
        size = [None if s is None else s - k + 1 for s in (input_shape[2:4] if first else input_shape[1:3])]
        return (input_shape[0], 2 * k * k * channels, *size) if first else (input_shape[0], *size, 2 * k * k * channels)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "epsilon": self.epsilon,
                "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="arcface_keras")
class Dirac(keras.initializers.Initializer):
    """Glorot-uniform conv kernels whose first min(C_in, C_out) filters are the identity.

    Filter i (i < C_in) is 1 at the centre tap of input channel i and 0
    elsewhere, so the layer starts by passing its input through.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kernel = keras.initializers.GlorotUniform(self.seed)(shape, dtype=dtype)
        height, width, inputs, outputs = shape
        count = min(inputs, outputs)
        identity = np.zeros((height, width, inputs, count), dtype="float32")
        identity[height // 2, width // 2, np.arange(count), np.arange(count)] = 1.0
        return keras.ops.concatenate([keras.ops.cast(identity, kernel.dtype), kernel[..., count:]], axis=-1)

    def get_config(self):
        return {"seed": self.seed}
