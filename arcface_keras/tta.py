"""Test-time augmentation layers: the mirror image and one-pixel shifts
(the views of the ArcFace paper's flip test and of airbench's TTA)."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="arcface_keras")
class HorizontalFlip(layers.Layer):
    """Mirror (B, H, W, C) images left to right, always (for the flip test)."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


@keras.saving.register_keras_serializable(package="arcface_keras")
class Translate(layers.Layer):
    """Shift (B, H, W, C) images by `offset` pixels down and right (negative: up and left),
    filling the border by reflection (for test-time augmentation)."""

    def __init__(self, offset=1, **kwargs):
        super().__init__(**kwargs)
        self.offset = int(offset)

    def call(self, images):
        pad = abs(self.offset)
        padded = keras.ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
        start = pad - self.offset
        height, width = images.shape[1], images.shape[2]
        return padded[:, start:start + height, start:start + width, :]

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
