"""tf.data pipelines: shuffled, augmented training batches; P × K batches
for the triplet loss; plain batches for inference. Images come from arrays
in memory or from `ImageFiles` decoded from disk.
"""

import numpy as np

from arcface_keras.errors import DataError

AUGMENTATIONS = ("crop-flip", "crop-flip-cutout", "shift", "shift-flip")
PAD_MODES = ("zeros", "reflect")  # what fills the border a shift or crop uncovers
CUTOUT_SIZE = 12  # airbench96's choice for CIFAR-10 at a ~45-epoch budget (DeVries & Taylor used 16 at 200 epochs)


SHUFFLE_BUFFER_CACHED = 10_000  # decoded images a file-cached pipeline shuffles among


def _source(images, labels, training, seed, cache=None, indexed=False):
    """Unbatched (uint8 image, int32 label) elements, shuffled when training;
    with `indexed`, (image, label, int64 position in `images`) elements.

    Arrays are sliced from memory. Files are shuffled as paths (so nothing
    but the paths is held) and decoded in parallel. With `cache`
    (``"memory"`` or a file path) the decoded images are cached after the
    first epoch: the paths are put in one random order (from `seed`) before
    the cache, since a folder's list is sorted by class, and the cached
    images are shuffled anew each epoch, all of them in memory, in a buffer
    of `SHUFFLE_BUFFER_CACHED` from a file cache.
    """
    import tensorflow as tf

    labels = np.asarray(labels).astype("int32")
    extra = (np.arange(len(labels), dtype="int64"),) if indexed else ()
    if isinstance(images, np.ndarray):
        dataset = tf.data.Dataset.from_tensor_slices((images, labels, *extra))
        return dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True) if training else dataset
    paths = images.paths.astype(str)
    if training and cache:  # one fixed random order for the cache; the buffer below reshuffles it every epoch
        order = np.random.default_rng(seed).permutation(len(labels))
        paths, labels, extra = paths[order], labels[order], tuple(e[order] for e in extra)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, *extra))
    if training and not cache:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda path, *rest: (images.decode(path), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache("" if cache == "memory" else cache)
        if training:
            buffer = len(labels) if cache == "memory" else min(len(labels), SHUFFLE_BUFFER_CACHED)
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset


def image_batches(images, batch_size=100):
    """Batches of float32 images (0–255), in order, for inference."""
    import tensorflow as tf

    dataset = _source(images, np.zeros(len(images), dtype="int32"), training=False, seed=0)
    return dataset.batch(batch_size).map(lambda image, _: tf.cast(image, tf.float32)).prefetch(tf.data.AUTOTUNE)


def make_dataset(images, labels, batch_size=100, training=False, augment=None, seed=0,
                 cache=None, drop_remainder=False, pad_mode="zeros", flip_epoch=None):
    """A tf.data pipeline of raw float32 images (0–255) and int32 labels.

    Training pipelines are shuffled anew each epoch; `augment` is `None`,
    ``"crop-flip"`` (random crop after 4-pixel padding and a random
    horizontal flip: the CIFAR recipe), ``"crop-flip-cutout"`` (the same, then
    a `CUTOUT_SIZE`-pixel square at a random center, clipped at the border,
    filled with the image's mean colour: Cutout, DeVries & Taylor 2017) or ``"shift"`` (random crop after
    2-pixel padding, no flip: for digits, whose mirror images are not digits) or
    ``"shift-flip"`` (2-pixel shifts and the random flip: airbench's lighter
    augmentation for short budgets). `pad_mode` fills the padding with zeros
    or mirrors the image into it (``"reflect"``, airbench's). With
    `flip_epoch` (an integer ``tf.Variable`` holding the current epoch, kept
    by `callbacks.EpochCounter`) a flipping augmentation mirrors image *i*
    exactly in the epochs where *i* + epoch is odd, instead of at random:
    airbench's alternating flip, each image seen both ways in any two
    consecutive epochs. Elements are ``(images, labels)``. `images` is a uint8 array or `ImageFiles` (decoded
    from disk as they stream; `cache` as in `_source`). `drop_remainder`
    drops a last, smaller batch.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise DataError(f"batch_size must be positive. Received: batch_size={batch_size}")
    alternate = training and bool(augment) and flip_epoch is not None and _parameters(augment)[1]
    dataset = _source(images, labels, training, seed, cache, indexed=alternate)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    transform = batch_augmentation(augment, pad_mode) if training and augment else None

    def to_model_inputs(image, label, index=None):
        # Augmented a batch at a time: one vectorised op per step instead of one per image
        # (fastnet on CIFAR-10, two cores: the pipeline's share of a step 5.0 % against 8.2 %,
        # docs/benchmarks.md).
        mirrored = None if index is None else tf.math.floormod(index + tf.cast(flip_epoch, tf.int64), 2) == 1
        image = tf.cast(image if transform is None else transform(image, mirrored), tf.float32)
        return image, label

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _parameters(name):
    """(padding, flip, cutout) of the augmentation called `name`."""
    if name not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS} or None. Received: augment={name!r}")
    return (2 if name.startswith("shift") else 4), name != "shift", name == "crop-flip-cutout"


def _pad_mode(pad_mode):
    if pad_mode not in PAD_MODES:
        raise DataError(f"pad_mode must be one of {PAD_MODES}. Received: pad_mode={pad_mode!r}")
    return "CONSTANT" if pad_mode == "zeros" else "REFLECT"


def augmentation(name, pad_mode="zeros"):
    """The per-image transform called `name` (see `make_dataset`)."""
    import tensorflow as tf

    padding, flip, cutout = _parameters(name)
    mode = _pad_mode(pad_mode)

    def transform(image):
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]], mode=mode)
        image = tf.image.random_crop(padded, tf.shape(image))
        image = tf.image.random_flip_left_right(image) if flip else image
        return cut_out(image, CUTOUT_SIZE) if cutout else image

    return transform


def batch_augmentation(name, pad_mode="zeros"):
    """`augmentation(name, pad_mode)` applied to a whole batch (B, H, W, C) at once, each
    image with its own random crop offset, flip and Cutout square. The transform's
    optional second argument, a (B,) boolean tensor, says which images to mirror
    (instead of a random half)."""
    import tensorflow as tf

    padding, flip, cutout = _parameters(name)
    mode = _pad_mode(pad_mode)

    def transform(images, mirrored=None):
        shape = tf.shape(images)
        count, height, width = shape[0], shape[1], shape[2]
        padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode=mode)
        top = tf.random.uniform([count, 1], 0, 2 * padding + 1, dtype=tf.int32)
        left = tf.random.uniform([count, 1], 0, 2 * padding + 1, dtype=tf.int32)
        crops = tf.gather(padded, top + tf.range(height)[None, :], axis=1, batch_dims=1)
        crops = tf.gather(crops, left + tf.range(width)[None, :], axis=2, batch_dims=1)
        if flip:
            mirrored = (tf.random.uniform([count]) < 0.5) if mirrored is None else mirrored
            crops = tf.where(mirrored[:, None, None, None], tf.reverse(crops, axis=[2]), crops)
        return cut_out_batch(crops, CUTOUT_SIZE) if cutout else crops

    return transform


def cut_out_batch(images, size):
    """`cut_out` for every image of a batch (B, H, W, C), each with its own square."""
    import tensorflow as tf

    shape = tf.shape(images)
    center = tf.cast(tf.random.uniform([shape[0], 2]) * tf.cast(shape[1:3], tf.float32), tf.int32)
    low, high = center - size // 2, center - size // 2 + size
    rows, cols = tf.range(shape[1])[None, :], tf.range(shape[2])[None, :]
    inside_rows = (rows >= low[:, :1]) & (rows < high[:, :1])
    inside_cols = (cols >= low[:, 1:]) & (cols < high[:, 1:])
    inside = inside_rows[:, :, None] & inside_cols[:, None, :]
    mean = tf.cast(tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2]), images.dtype)
    return tf.where(inside[..., None], mean[:, None, None, :], images)


def cut_out(image, size):
    """`image` (H, W, C) with a size×size square at a uniformly drawn center
    (clipped where it crosses the border) set to the image's mean colour."""
    import tensorflow as tf

    shape = tf.shape(image)
    center = tf.cast(tf.random.uniform([2]) * tf.cast(shape[:2], tf.float32), tf.int32)
    low, high = center - size // 2, center - size // 2 + size
    rows, cols = tf.range(shape[0]), tf.range(shape[1])
    inside = ((rows >= low[0]) & (rows < high[0]))[:, None] & ((cols >= low[1]) & (cols < high[1]))[None, :]
    mean = tf.cast(tf.reduce_mean(tf.cast(image, tf.float32), axis=[0, 1]), image.dtype)
    return tf.where(inside[..., None], mean[None, None, :], image)


def balanced_dataset(images, labels, classes_per_batch, samples_per_class, seed=0, augment=None, pad_mode="zeros"):
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

    in_memory = isinstance(images, np.ndarray)
    image_table = tf.constant(images if in_memory else images.paths.astype(str))
    label_table = tf.constant(labels.astype("int32"))

    transform = batch_augmentation(augment, pad_mode) if augment else None

    def gather(indices):
        batch = tf.gather(image_table, indices)
        if not in_memory:
            batch = tf.map_fn(images.decode, batch, fn_output_signature=tf.TensorSpec(images.image_shape, tf.uint8))
        if transform is not None:
            batch = transform(batch)
        return tf.cast(batch, tf.float32), tf.gather(label_table, indices)

    size = classes_per_batch * samples_per_class
    dataset = tf.data.Dataset.from_generator(index_batches, output_signature=tf.TensorSpec((size,), tf.int64))
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def balanced_steps(num_images, classes_per_batch, samples_per_class):
    """Steps of `balanced_dataset` that see about as many images as one epoch."""
    return max(1, num_images // (classes_per_batch * samples_per_class))
