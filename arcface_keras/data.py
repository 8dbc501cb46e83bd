"""Data sets, their statistics, and tf.data pipelines.

Three sources give the same thing, a `DataSplits` of uint8 NHWC arrays:
- a tensorflow-datasets name (``mnist``, ``cifar10``, ``fashion_mnist``, any
  image-classification set with ``image``/``label`` features);
- a local path (``--data``): a Keras-layout ``.npz``, a folder of the four
  MNIST-format idx ``.gz`` files, or a folder of the CIFAR-10 python batches;
- ``digits``: scikit-learn's bundled 8×8 handwritten digits, which needs no
  network.

Normalisation is not done here: it is the model's first layer (see
`arcface_keras.models`), so an exported model takes raw images.
"""

import dataclasses
import gzip
import os
import pickle
import socket
import struct

import zlib

import numpy as np

from arcface_keras import errors

# Per-channel statistics in [0, 1] units, as in the source report.
KNOWN_STATISTICS = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}
DIGITS_TEST_FRACTION = 0.2  # stratified, seed 0: 1,438 train / 359 test
MNIST_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


DataError = errors.DataError  # a data set that cannot be loaded; the message says what to do


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

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])


def load(dataset="digits", data=None, validation_fraction=0.1, train_samples=None, seed=0, data_dir=None,
         imbalance_ratio=None):
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

    Returns:
        A `DataSplits`.
    """
    name = data_name(dataset, data)
    if data is not None:
        arrays = load_local(data)
    elif dataset == "digits":
        arrays = load_digits()
    else:
        arrays = load_tfds(dataset, data_dir=data_dir)
    x_train, y_train, x_test, y_test = _checked(arrays, source=data or dataset)
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation_fraction must lie in (0, 1). Received: validation_fraction={validation_fraction}")
    num_classes = int(y_train.max()) + 1
    x_train, y_train, x_val, y_val = stratified_split(x_train, y_train, validation_fraction, seed)
    if train_samples is not None:
        if not 0 < train_samples <= len(y_train):
            raise DataError(f"--train-samples must lie in [1, {len(y_train)}]. Received: {train_samples}")
        if train_samples < len(y_train):
            _, _, x_train, y_train = stratified_split(x_train, y_train, train_samples / len(y_train), seed)
    if imbalance_ratio is not None:
        x_train, y_train = long_tail(x_train, y_train, imbalance_ratio, seed)
    mean, std = KNOWN_STATISTICS.get(name, (None, None))
    if mean is None or len(mean) != x_train.shape[-1]:
        mean, std = channel_statistics(x_train)
    return DataSplits(name, x_train, y_train, x_val, y_val, x_test, y_test, num_classes, tuple(mean), tuple(std))


def data_name(dataset="digits", data=None):
    """The name of the data `load` reads: `dataset`, unless `data` is given
    with the default ``digits``, then the file or folder's name (``my.npz`` →
    ``my``; a CIFAR-10 batch folder → ``cifar10``). Run folders and reports
    are named from it."""
    if data is None or dataset not in (None, "digits"):
        return dataset
    return _name_from_path(data)


def long_tail_counts(class_sizes, ratio):
    """Exponential profile: class c keeps n_max · ratio^(−c / (C − 1)) images.

    n_max is the smallest class size available, so every class can be cut to
    its quota; class 0 is the head, class C − 1 the tail (n_max / ratio).
    """
    if not ratio >= 1:
        raise DataError(f"imbalance_ratio must be ≥ 1. Received: imbalance_ratio={ratio!r}")
    sizes = np.asarray(class_sizes)
    exponents = np.arange(len(sizes)) / max(len(sizes) - 1, 1)
    return np.maximum(1, np.floor(sizes.min() * ratio ** -exponents)).astype(int)


def long_tail(x, y, ratio, seed=0):
    """A long-tailed subset of (x, y) following `long_tail_counts`."""
    classes, sizes = np.unique(y, return_counts=True)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([
        rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, long_tail_counts(sizes, ratio))
    ])
    keep = np.sort(keep)
    return x[keep], y[keep]


def channel_statistics(images):
    """Per-channel mean and std of uint8 NHWC images, in [0, 1] units."""
    pixels = images.reshape(-1, images.shape[-1]).astype("float64") / 255.0
    std = pixels.std(axis=0)
    return tuple(float(v) for v in pixels.mean(axis=0)), tuple(float(max(v, 1e-3)) for v in std)


def stratified_split(x, y, fraction, seed):
    """Split off round(fraction · N) samples, each class in proportion.

    Per-class counts are proportional quotas rounded by largest remainder, so
    the total is exact. Returns ``(x_kept, y_kept, x_held, y_held)``.
    """
    classes, sizes = np.unique(y, return_counts=True)
    total = int(round(fraction * len(y)))
    quotas = sizes * total / len(y)
    counts = np.floor(quotas).astype(int)
    for index in np.argsort(counts - quotas)[: total - counts.sum()]:
        counts[index] += 1
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, counts)])
    held = np.sort(held)
    kept = np.setdiff1d(np.arange(len(y)), held)
    return x[kept], y[kept], x[held], y[held]


# ---------------------------------------------------------------- sources --
def load_digits():
    """scikit-learn's 8×8 digits as uint8 (N, 8, 8, 1), fixed stratified split."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype("uint8")[..., None]
    labels = bunch.target.astype("int64")
    x_train, y_train, x_test, y_test = stratified_split(images, labels, DIGITS_TEST_FRACTION, seed=0)
    return x_train, y_train, x_test, y_test


def load_tfds(name, data_dir=None):
    """A tensorflow-datasets image-classification set as NumPy arrays.

    Fails within seconds, pointing to ``--data``, when the set is not on disk
    and there is no network (tensorflow-datasets itself retries for minutes).
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # unknown name, wrong config
        raise DataError(
            f"Unknown data set {name!r}: use 'digits', a tensorflow-datasets image "
            f"classification name (mnist, cifar10, fashion_mnist, ...) or --data PATH. ({error})"
        ) from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"Data set {name!r} has no 'image' and 'label' features; it is not image classification.")
    if not builder.is_prepared():
        if not network_available():
            raise DataError(
                f"Cannot download {name!r}: no network. Pass a local copy with "
                "--data PATH (.npz, MNIST idx folder or CIFAR-10 batches)."
            )
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        try:
            batches = builder.as_dataset(split=split, as_supervised=True).batch(8192)
            images, labels = zip(*tfds.as_numpy(batches))
        except (KeyError, ValueError) as error:
            raise DataError(f"Data set {name!r} has no usable {split!r} split: {error}") from None
        splits[split] = (np.concatenate(images), np.concatenate(labels))
    return splits["train"][0], splits["train"][1], splits["test"][0], splits["test"][1]


def network_available(host="storage.googleapis.com", port=443, timeout=5.0):
    """Whether tensorflow-datasets' download host answers within `timeout`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_local(path):
    """Arrays from a Keras-layout .npz, an MNIST idx folder or CIFAR batches."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"--data {path!r} does not exist.")
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise DataError(f"--data {path!r} is a file but not an .npz (x_train, y_train, x_test, y_test).")
        return _load_npz(path)
    entries = set(os.listdir(path))
    if set(MNIST_IDX_FILES.values()) <= entries:
        return tuple(_read_idx(os.path.join(path, MNIST_IDX_FILES[key])) for key in ("x_train", "y_train", "x_test", "y_test"))
    if set(CIFAR_BATCHES) <= entries:
        return _load_cifar_batches(path)
    raise DataError(
        f"--data {path!r} is a folder with neither the four MNIST idx files "
        f"({', '.join(MNIST_IDX_FILES.values())}) nor the CIFAR-10 batches (data_batch_1…5, test_batch)."
    )


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive.files]
            if missing:
                raise DataError(f"--data {path!r} lacks {missing}; it needs x_train, y_train, x_test, y_test.")
            return tuple(archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"--data {path!r} is not a readable .npz: {error}") from None


def _read_idx(path):
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"--data file {path!r} is not a complete gzip-compressed idx file: {error}") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"--data file {path!r} is not an idx file of unsigned bytes (bad magic number).")
    rank = raw[3]
    if len(raw) < 4 + 4 * rank:
        raise DataError(f"--data file {path!r} is truncated inside its idx header.")
    shape = struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank])
    data = np.frombuffer(raw, dtype="uint8", offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path!r} holds {data.size} bytes for a declared shape {shape}: truncated or corrupt.")
    return data.reshape(shape)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and NumPy arrays, nothing executable."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _load_cifar_batches(folder):
    def read(name):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as file:
                batch = _ArrayUnpickler(file, encoding="bytes").load()
            batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
            images = np.asarray(batch["data"], dtype="uint8").reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return images, np.asarray(batch["labels"], dtype="int64")
        except Exception as error:
            raise DataError(f"{path!r} is not a CIFAR-10 python batch: {error}") from None

    train = [read(name) for name in CIFAR_BATCHES[:-1]]
    x_test, y_test = read(CIFAR_BATCHES[-1])
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def _name_from_path(path):
    base = os.path.basename(os.path.normpath(path))
    if base.endswith(".npz"):
        base = base[: -len(".npz")]
    if os.path.isdir(path) and set(CIFAR_BATCHES) <= set(os.listdir(path)):
        return "cifar10"
    return base.lower().replace("-", "_") or "local"


def _checked(arrays, source):
    """The four arrays as (N, H, W, C) uint8 images and int64 labels 0 … C − 1,
    or a DataError that names what is wrong."""
    try:
        x_train, y_train, x_test, y_test = (np.asarray(a) for a in arrays)
    except ValueError as error:  # ragged lists of images
        raise DataError(f"{source}: images of different shapes cannot form one array ({error}).") from None
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.dtype != np.uint8:
            raise DataError(f"{source}: {name} must be uint8 images. Received dtype {x.dtype}.")
        if x.ndim not in (3, 4):
            raise DataError(f"{source}: {name} must have shape (N, H, W) or (N, H, W, C). Received {x.shape}.")
        if len(x) == 0 or 0 in x.shape:
            raise DataError(f"{source}: {name} holds no images. Received shape {x.shape}.")
    if x_train.ndim == 3:
        x_train = x_train[..., None]
    if x_test.ndim == 3:
        x_test = x_test[..., None]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{source}: train and test images differ in shape: {x_train.shape[1:]} vs {x_test.shape[1:]}."
        )
    if x_train.shape[-1] not in (1, 3):
        raise DataError(f"{source}: images must have 1 or 3 channels. Received shape {x_train.shape[1:]}.")
    for name, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test)):
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: {name} must hold integer class ids. Received dtype {y.dtype}.")
        if y.size != len(x):
            raise DataError(f"{source}: {y.size} labels in {name} for {len(x)} images.")
        if y.min() < 0:
            raise DataError(f"{source}: {name} has negative labels.")
    y_train, y_test = y_train.reshape(-1).astype("int64"), y_test.reshape(-1).astype("int64")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise DataError(f"{source}: y_train holds {len(classes)} class; classification needs at least 2.")
    if classes[-1] != len(classes) - 1:
        missing = sorted(set(range(int(classes[-1]) + 1)) - set(classes.tolist()))
        raise DataError(f"{source}: labels must be 0 … C − 1, each with training images; "
                        f"y_train has no image of classes {missing[:10]}.")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if unseen.size:
        raise DataError(f"{source}: y_test has classes that y_train lacks: {unseen[:10].tolist()}.")
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------- pipelines --
AUGMENTATIONS = ("crop-flip", "crop-flip-cutout", "shift")
CUTOUT_SIZE = 12  # airbench96's choice for CIFAR-10 at a ~45-epoch budget (DeVries & Taylor used 16 at 200 epochs)


def make_dataset(images, labels, batch_size=100, training=False, augment=None, seed=0, labels_as_input=True):
    """A tf.data pipeline of raw float32 images (0–255) and int32 labels.

    Training pipelines are shuffled anew each epoch; `augment` is `None`,
    ``"crop-flip"`` (random crop after 4-pixel zero padding and a random
    horizontal flip: the CIFAR recipe), ``"crop-flip-cutout"`` (the same, then
    a `CUTOUT_SIZE`-pixel square at a random centre, clipped at the border,
    filled with the image's mean colour: Cutout, DeVries & Taylor 2017) or ``"shift"`` (random crop after
    2-pixel padding, no flip: for digits, whose mirror images are not digits). Elements are ``((images, labels), labels)`` when
    `labels_as_input` (margin heads read the labels), else
    ``(images, labels)``. The arrays already sit in memory, so no cache.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise DataError(f"batch_size must be positive. Received: batch_size={batch_size}")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
    if training:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if training and augment:
        transform = augmentation(augment)
        dataset = dataset.map(lambda image, label: (transform(image), label), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)

    def to_model_inputs(image, label):
        image = tf.cast(image, tf.float32)
        return ((image, label), label) if labels_as_input else (image, label)

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def augmentation(name):
    """The per-image transform called `name` (see `make_dataset`)."""
    import tensorflow as tf

    if name not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS} or None. Received: augment={name!r}")
    padding, flip = (2, False) if name == "shift" else (4, True)
    cutout = name == "crop-flip-cutout"

    def transform(image):
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        image = tf.image.random_crop(padded, tf.shape(image))
        image = tf.image.random_flip_left_right(image) if flip else image
        return cut_out(image, CUTOUT_SIZE) if cutout else image

    return transform


def cut_out(image, size):
    """`image` (H, W, C) with a size×size square at a uniformly drawn centre
    (clipped where it crosses the border) set to the image's mean colour."""
    import tensorflow as tf

    shape = tf.shape(image)
    centre = tf.cast(tf.random.uniform([2]) * tf.cast(shape[:2], tf.float32), tf.int32)
    low, high = centre - size // 2, centre - size // 2 + size
    rows, cols = tf.range(shape[0]), tf.range(shape[1])
    inside = ((rows >= low[0]) & (rows < high[0]))[:, None] & ((cols >= low[1]) & (cols < high[1]))[None, :]
    mean = tf.cast(tf.reduce_mean(tf.cast(image, tf.float32), axis=[0, 1]), image.dtype)
    return tf.where(inside[..., None], mean[None, None, :], image)


def balanced_dataset(images, labels, classes_per_batch, samples_per_class, seed=0, augment=None):
    """Endless P×K batches: P classes drawn without replacement, K images each.

    Every batch holds positives for every anchor, as triplet mining needs. A
    class with fewer than K images is drawn with replacement. Elements are
    ``(images, labels)``, raw float32 images; use with ``steps_per_epoch``
    (`balanced_steps`).
    """
    import tensorflow as tf

    classes = np.unique(labels)
    if not 2 <= classes_per_batch <= len(classes):
        raise DataError(f"classes_per_batch must lie in [2, {len(classes)}]. Received: {classes_per_batch}")
    if samples_per_class < 2:
        raise DataError(f"samples_per_class must be ≥ 2. Received: {samples_per_class}")
    members = [np.flatnonzero(labels == c) for c in classes]

    def index_batches():
        rng = np.random.default_rng(seed)
        while True:
            chosen = rng.choice(len(classes), classes_per_batch, replace=False)
            yield np.concatenate(
                [rng.choice(members[c], samples_per_class, replace=len(members[c]) < samples_per_class) for c in chosen]
            )

    image_table = tf.constant(images)
    label_table = tf.constant(labels.astype("int32"))

    transform = augmentation(augment) if augment else None

    def gather(indices):
        batch = tf.gather(image_table, indices)
        if transform is not None:
            batch = tf.map_fn(transform, batch)
        return tf.cast(batch, tf.float32), tf.gather(label_table, indices)

    size = classes_per_batch * samples_per_class
    dataset = tf.data.Dataset.from_generator(index_batches, output_signature=tf.TensorSpec((size,), tf.int64))
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def balanced_steps(num_images, classes_per_batch, samples_per_class):
    """Steps of `balanced_dataset` that see about as many images as one epoch."""
    return max(1, num_images // (classes_per_batch * samples_per_class))
