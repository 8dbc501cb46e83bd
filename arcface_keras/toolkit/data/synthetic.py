"""A synthetic many-class image set, for heads with thousands of classes.

Each class is a random grayscale prototype image; its images are the
prototype plus Gaussian pixel noise. With thousands of classes and a handful
of images each it exercises what a face-scale head does (many classes, few
images per class) at a size this machine trains in minutes.
"""

import numpy as np

from arcface_keras.toolkit.io import write_bytes_atomic


def many_classes(path, num_classes, train_per_class=8, test_per_class=4, size=8, noise=70.0, seed=0):
    """Write a Keras-layout ``.npz`` (x_train, y_train, x_test, y_test; uint8 (N, size, size)).

    Args:
        path: the ``.npz`` to write (atomically).
        num_classes: number of classes.
        train_per_class, test_per_class: images per class in each split.
        size: image side in pixels. Defaults to `8`.
        noise: standard deviation of the pixel noise (0–255 scale). Defaults to `70.0`.
        seed: of the prototypes and the noise. Defaults to `0`.
    """
    import io

    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 255, size=(num_classes, size, size))

    def draw(per_class):
        labels = np.repeat(np.arange(num_classes), per_class)
        images = prototypes[labels] + rng.normal(0, noise, size=(len(labels), size, size))
        return np.clip(np.rint(images), 0, 255).astype("uint8"), labels.astype("int64")

    (x_train, y_train), (x_test, y_test) = draw(train_per_class), draw(test_per_class)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    write_bytes_atomic(path, buffer.getvalue())
    return path
