"""Data sets, their statistics, and tf.data pipelines.

Four sources give the same thing, a `DataSplits` of uint8 NHWC images:
- an image folder (``--data FOLDER``): class subfolders, or ``train/``,
  ``val/``, ``test/`` subfolders of class subfolders (`folders`); its images
  stay on disk as `ImageFiles` and stream through the pipelines;
- a tensorflow-datasets name (``mnist``, ``cifar10``, ``fashion_mnist``, any
  image-classification set with ``image``/``label`` features);
- a local path (``--data``): a Keras-layout ``.npz``, a folder of the four
  MNIST-format idx ``.gz`` files, or a folder of the CIFAR-10 python batches;
- ``digits``: scikit-learn's bundled 8×8 handwritten digits, which needs no
  network.

Normalisation is not done here: it is the model's first layer (see
`arcface_keras.toolkit.models`), so an exported model takes raw images.
"""

import dataclasses
import fnmatch
import os

import numpy as np

from arcface_keras.toolkit.data import folders, sources
from arcface_keras.toolkit.data.folders import ImageFiles  # noqa: F401
from arcface_keras.toolkit.data.pipelines import (  # noqa: F401
    AUGMENTATIONS,
    CUTOUT_SIZE,
    PAD_MODES,
    augmentation,
    balanced_dataset,
    balanced_steps,
    batch_augmentation,
    cut_out,
    cut_out_batch,
    image_batches,
    make_dataset,
)
from arcface_keras.toolkit.data.sources import (  # noqa: F401
    CIFAR_BATCHES,
    DIGITS_TEST_FRACTION,
    MNIST_IDX_FILES,
    checked,
    load_digits,
    load_local,
    load_tfds,
    network_available,
)
from arcface_keras.toolkit.data.splits import channel_statistics, long_tail, long_tail_counts, stratified_split  # noqa: F401
from arcface_keras.errors import DataError  # noqa: F401

KNOWN_STATISTICS = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}


@dataclasses.dataclass
class DataSplits:
    """Train / validation / test arrays of one data set (uint8, NHWC)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple  # per channel, [0, 1] units
    std: tuple
    class_names: list = None  # one name per class id; folder names for image folders
    details: dict = dataclasses.field(default_factory=dict)  # how the data was read and split (metrics.json)

    def __post_init__(self):
        if self.class_names is None:
            self.class_names = [str(c) for c in range(self.num_classes)]

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])


def load(dataset="digits", data=None, validation_fraction=0.1, train_samples=None, seed=0, data_dir=None,
         imbalance_ratio=None, image_size=None, color_mode="auto", classes=None):
    """Load a data set and split it into train, validation and test.

    Args:
        dataset: a tensorflow-datasets name or ``"digits"``; with `data`, the
            name used for known statistics (``mnist``, ``cifar10``) and
            reports. Defaults to `"digits"`.
        data: path of a local data set, or `None`. Defaults to `None`.
        validation_fraction: share of the training split held out,
            stratified, for validation. Defaults to `0.1`.
        train_samples: keep only this many training images (a stratified
            subset), for quick runs; `None` keeps all. Defaults to `None`.
        seed: seed of the splits. Defaults to `0`.
        data_dir: tensorflow-datasets folder. Defaults to `None` (its own).
        imbalance_ratio: cut the training split (after the validation split,
            which stays balanced) to a long tail with this ratio of largest
            to smallest class (see `long_tail`); `None` keeps it.
            Defaults to `None`.
        image_size: ``(H, W)``: image folders are resized to it (needed
            when their images differ in size). Defaults to `None`.
        color_mode: image folders: ``grayscale``, ``rgb`` or ``auto`` (from
            the images). Defaults to `"auto"`.
        classes: keep only the classes whose name matches one of these
            shell patterns (``fnmatch``: ``"Greek__*"``, ``"[0-4]"``; class
            names of arrays are their ids), relabelled 0 … k − 1 in name
            order; `None` keeps all. Defaults to `None`.

    Returns:
        A `DataSplits`. For an image folder its images are `ImageFiles`,
        decoded from disk as they are used.
    """
    name = data_name(dataset, data)
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation_fraction must lie in (0, 1). Received: validation_fraction={validation_fraction}")
    class_names, details = None, {"source": "arrays"}
    if data is not None and folders.is_image_folder(data) and not _array_folder(data):
        parts, class_names, details = folders.load_folder(data, image_size, color_mode, validation_fraction, seed)
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = (parts[s] for s in ("train", "val", "test"))
    else:
        if data is not None:
            arrays = load_local(data)
        elif dataset == "digits":
            arrays = load_digits()
        else:
            arrays = load_tfds(dataset, data_dir=data_dir)
        x_train, y_train, x_test, y_test = checked(arrays, source=data or dataset)
        x_train, y_train, x_val, y_val = stratified_split(x_train, y_train, validation_fraction, seed)
    num_classes = int(y_train.max()) + 1
    if classes is not None:
        class_names = class_names or [str(c) for c in range(num_classes)]
        kept = [c for c, name in enumerate(class_names) if any(fnmatch.fnmatchcase(name, p) for p in classes)]
        if len(kept) < 2:
            raise DataError(f"--classes {list(classes)} matches {len(kept)} class(es) of {name!r}; at least 2 are needed.")
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
            _keep_classes(x, y, kept) for x, y in ((x_train, y_train), (x_val, y_val), (x_test, y_test)))
        class_names, num_classes = [class_names[c] for c in kept], len(kept)
        details = {**details, "classes": class_names}
    if train_samples is not None:
        if not 0 < train_samples <= len(y_train):
            raise DataError(f"--train-samples must lie in [1, {len(y_train)}]. Received: {train_samples}")
        if train_samples < len(y_train):
            _, _, x_train, y_train = stratified_split(x_train, y_train, train_samples / len(y_train), seed)
    if imbalance_ratio is not None:
        x_train, y_train = long_tail(x_train, y_train, imbalance_ratio, seed)
    mean, std = KNOWN_STATISTICS.get(name, (None, None))
    if mean is None or len(mean) != x_train.shape[-1]:
        mean, std = channel_statistics(_statistics_sample(x_train, seed))
    return DataSplits(name, x_train, y_train, x_val, y_val, x_test, y_test, num_classes, tuple(mean), tuple(std),
                      class_names, details)


def _keep_classes(images, labels, kept):
    """The images of classes `kept`, relabelled by their position in `kept`."""
    mapping = np.full(int(max(labels.max(), max(kept))) + 1, -1)
    mapping[kept] = np.arange(len(kept))
    chosen = np.flatnonzero(mapping[labels] >= 0)
    return images[chosen], mapping[labels[chosen]].astype("int64")


def _array_folder(path):
    entries = set(os.listdir(path))
    return set(MNIST_IDX_FILES.values()) <= entries or set(CIFAR_BATCHES) <= entries


def _statistics_sample(images, seed):
    """The images the normalisation statistics come from: all arrays in
    memory; a random sample of `folders.STATISTICS_SAMPLE` image files."""
    if isinstance(images, np.ndarray):
        return images
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(images))[: folders.STATISTICS_SAMPLE])
    return images[chosen].load()


def data_name(dataset="digits", data=None):
    """The name of the data `load` reads: `dataset`, unless `data` is given
    with the default ``digits``, then the file or folder's name (``my.npz`` →
    ``my``; a CIFAR-10 batch folder → ``cifar10``). Run folders and reports
    are named from it."""
    if data is None or dataset not in (None, "digits"):
        return dataset
    return sources.name_from_path(data)
