"""Array sources: a tensorflow-datasets name, a Keras-layout ``.npz``, a
folder of the four MNIST-format idx ``.gz`` files, a folder of the CIFAR-10
python batches, and ``digits`` (scikit-learn's bundled 8×8 digits, no
network needed). Each gives ``(x_train, y_train, x_test, y_test)``, checked
by `checked`.
"""

import gzip
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from arcface_keras.toolkit.data.splits import stratified_split
from arcface_keras.errors import DataError
from arcface_keras.network import network_available  # noqa: F401  (data.network_available)

DIGITS_TEST_FRACTION = 0.2  # stratified, seed 0: 1,438 train / 359 test
MNIST_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


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
                "--data PATH (an image folder, .npz, MNIST idx folder or CIFAR-10 batches)."
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
        f"({', '.join(MNIST_IDX_FILES.values())}) nor the CIFAR-10 batches (data_batch_1…5, test_batch) "
        "nor class subfolders of images."
    )


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive.files]
            if missing:
                raise DataError(f"--data {path!r} lacks {missing}; it needs x_train, y_train, x_test, y_test.")
            return tuple(archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # what a damaged file raises
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
        except (pickle.UnpicklingError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError,
                IndexError) as error:  # what a damaged or foreign pickle raises
            raise DataError(f"{path!r} is not a CIFAR-10 python batch: {error}") from None

    train = [read(name) for name in CIFAR_BATCHES[:-1]]
    x_test, y_test = read(CIFAR_BATCHES[-1])
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def name_from_path(path):
    base = os.path.basename(os.path.normpath(path))
    if base.endswith(".npz"):
        base = base[: -len(".npz")]
    if os.path.isdir(path) and set(CIFAR_BATCHES) <= set(os.listdir(path)):
        return "cifar10"
    return base.lower().replace("-", "_") or "local"


def checked(arrays, source):
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
