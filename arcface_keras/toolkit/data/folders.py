"""Image folders: one subfolder per class (the folder name is the class
name), as `keras.utils.image_dataset_from_directory` reads them, or
``train/``, ``val/`` and ``test/`` subfolders that each hold class subfolders.

Every file is decoded once by TensorFlow before training (in parallel);
files that do not decode are skipped and reported, so training never meets
a bad file. The images stay on disk: `ImageFiles` stands in for a uint8
(N, H, W, C) array and the tf.data pipelines decode them as they stream.
"""

import dataclasses
import os

import numpy as np

from arcface_keras.toolkit.data.splits import stratified_split
from arcface_keras.errors import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # as image_dataset_from_directory
SPLIT_FOLDERS = ("train", "val", "test")
TEST_FRACTION = 0.2  # without a test/ folder: a stratified 20 % (seed 0) is the test split
COLOR_MODES = ("auto", "grayscale", "rgb")
STATISTICS_SAMPLE = 2000  # training images read for the normalisation statistics


@dataclasses.dataclass
class ImageFiles:
    """Image files that stand in for a uint8 array of shape ``(N, *image_shape)``.

    Indexing with an index array gives the subset (as for an array), so
    splits and subsets work on files and arrays alike; `decode` turns one
    path into the image the array would hold.

    Attributes:
        paths: (N,) file paths.
        image_shape: (H, W, C) after decoding: C is 1 (grayscale) or 3 (RGB).
        resize: whether decoded images are resized to (H, W) (bilinear with
            antialiasing, rounded back to uint8).
    """

    paths: np.ndarray
    image_shape: tuple
    resize: bool = False

    dtype = np.dtype("uint8")
    ndim = 4

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return dataclasses.replace(self, paths=self.paths[index])

    @property
    def shape(self):
        return (len(self.paths), *self.image_shape)

    def decode(self, path):
        """The uint8 (H, W, C) image tensor of one path tensor (TensorFlow ops)."""
        import tensorflow as tf

        return self.decode_bytes(tf.io.read_file(path))

    def decode_bytes(self, contents):
        """The uint8 (H, W, C) image tensor of one encoded file's bytes, decoded and
        resized as `decode` does (the service decodes uploads with it)."""
        import tensorflow as tf

        height, width, channels = self.image_shape
        # Decoded with its own channels (BMP and GIF decoders refuse channels=1), then converted.
        image = tf.io.decode_image(contents, dtype=tf.uint8, expand_animations=False)
        colour = tf.shape(image)[-1] >= 3
        if channels == 1:
            image = tf.cond(colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1])
        else:
            image = tf.cond(colour, lambda: image[..., :3], lambda: tf.image.grayscale_to_rgb(image[..., :1]))
        if self.resize:
            image = tf.image.resize(image, (height, width), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image.set_shape(self.image_shape)
        return image

    def load(self, batch_size=256):
        """All images as one uint8 array (for small sets: samples, figures)."""
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices(self.paths.astype(str)).map(
            self.decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
        batches = [batch.numpy() for batch in dataset]
        return np.concatenate(batches) if batches else np.zeros((0, *self.image_shape), dtype="uint8")


def is_image_folder(path):
    """Whether `path` is laid out as an image folder (class or split subfolders)."""
    return os.path.isdir(path) and any(os.path.isdir(os.path.join(path, entry)) for entry in os.listdir(path))


def load_folder(path, image_size=None, color_mode="auto", validation_fraction=0.1, seed=0):
    """Read an image folder's layout and check every image file.

    Args:
        path: the folder.
        image_size: ``(H, W)`` to resize every image to, or None to keep the
            images' own size (which must then be the same for all).
        color_mode: ``grayscale``, ``rgb``, or ``auto`` (rgb when any image
            has colour). Defaults to `"auto"`.
        validation_fraction: share of the training images held out for
            validation when there is no ``val/`` folder. Defaults to `0.1`.
        seed: seed of that validation split. Defaults to `0`.

    Returns:
        ``(splits, class_names, details)``: `splits` maps ``train``, ``val``,
        ``test`` to ``(ImageFiles, labels)``; `details` says how the splits
        were made and which files were skipped (for ``metrics.json``).
    """
    if color_mode not in COLOR_MODES:
        raise DataError(f"--color-mode must be one of {COLOR_MODES}. Received: {color_mode!r}")
    layout = _layout(path)
    class_names = sorted({name for files in layout.values() for _, name in files} if "train" not in layout
                         else {name for _, name in layout["train"]})
    for split, files in layout.items():
        unknown = sorted({name for _, name in files} - set(class_names))
        if unknown:
            raise DataError(f"--data {path!r}: {split}/ has classes that train/ lacks: {unknown[:5]}.")
    everything = [file for files in layout.values() for file, _ in files]
    shapes, bad = _decodable(everything)
    details = {"source": "image folder", "images": len(shapes), "skipped_files": {"count": len(bad), "first": bad[:5]}}
    if not shapes:
        raise DataError(f"--data {path!r} holds no readable image ({len(bad)} files failed to decode).")
    channels = {"grayscale": 1, "rgb": 3}.get(color_mode) or (3 if any(s[2] >= 3 for s in shapes.values()) else 1)
    sizes = {s[:2] for s in shapes.values()}
    if image_size is None and len(sizes) > 1:
        examples = ", ".join(f"{h}×{w}" for h, w in sorted(sizes)[:3])
        raise DataError(f"--data {path!r}: images differ in size ({examples}, …); pass --image-size H W to resize them.")
    height, width = image_size if image_size is not None else next(iter(sizes))
    resize = image_size is not None and sizes != {tuple(image_size)}
    index = {name: i for i, name in enumerate(class_names)}

    def files_of(split):
        kept = [(file, name) for file, name in layout[split] if file in shapes]
        paths = np.array([file for file, _ in kept], dtype=object)
        labels = np.array([index[name] for _, name in kept], dtype="int64")
        return ImageFiles(paths, (int(height), int(width), channels), resize), labels

    splits = {split: files_of(split) for split in layout}
    if "train" not in splits:
        images, labels = splits.pop("all")
        images, labels, test_images, test_labels = stratified_split(images, labels, TEST_FRACTION, seed=0)
        splits = {"train": (images, labels), "test": (test_images, test_labels)}
        details["splits"] = f"stratified: test {TEST_FRACTION:.0%} (seed 0), validation {validation_fraction:.0%} of the rest (seed {seed})"
    if "test" not in splits:
        images, labels = splits["train"]
        images, labels, test_images, test_labels = stratified_split(images, labels, TEST_FRACTION, seed=0)
        splits.update(train=(images, labels), test=(test_images, test_labels))
        details["splits"] = f"train/ folder; test: a stratified {TEST_FRACTION:.0%} of it (seed 0)"
    if "val" not in splits:
        images, labels = splits["train"]
        images, labels, val_images, val_labels = stratified_split(images, labels, validation_fraction, seed)
        splits.update(train=(images, labels), val=(val_images, val_labels))
        details.setdefault("splits", f"train/ and test/ folders; validation: a stratified {validation_fraction:.0%} of train (seed {seed})")
    details.setdefault("splits", "train/, val/ and test/ folders")
    missing = sorted(set(range(len(class_names))) - set(splits["train"][1].tolist()))
    if missing:
        raise DataError(f"--data {path!r}: classes without a readable training image: "
                        f"{[class_names[i] for i in missing[:5]]}.")
    if len(class_names) < 2:
        raise DataError(f"--data {path!r} holds {len(class_names)} class folder; classification needs at least 2.")
    return splits, class_names, details


def _layout(path):
    """``{split: [(file, class name), …]}``; split ``all`` without split folders."""
    entries = sorted(entry for entry in os.listdir(path) if not entry.startswith("."))
    folders = [entry for entry in entries if os.path.isdir(os.path.join(path, entry))]
    if "train" in folders and set(folders) <= set(SPLIT_FOLDERS):
        return {split: _class_files(os.path.join(path, split)) for split in folders}
    return {"all": _class_files(path)}


def image_paths(folder):
    """``[(file, class)]`` of every image file under `folder`, searched
    recursively in name order; class is the first subfolder's name, None for
    files directly in `folder`. Hidden files and folders are left out."""
    found = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative = os.path.relpath(directory, folder)
        label = None if relative == "." else relative.split(os.sep)[0]
        found += [(os.path.join(directory, name), label) for name in sorted(names)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")]
    return found


def _class_files(folder):
    files = [(path, label) for path, label in image_paths(folder) if label is not None]
    if not files:
        raise DataError(f"--data {folder!r} has no class subfolder holding image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return files


def _decodable(paths):
    """``({path: (H, W, C)} of the files TensorFlow decodes, [paths that fail])``."""
    import tensorflow as tf

    def shape(path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return path, tf.shape(image)

    dataset = tf.data.Dataset.from_tensor_slices(np.array(paths, dtype=object).astype(str))
    dataset = dataset.map(shape, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors().batch(1024)
    shapes = {}
    for names, sizes in dataset:
        shapes.update({name.decode(): tuple(int(v) for v in size) for name, size in zip(names.numpy(), sizes.numpy())})
    return shapes, [path for path in paths if path not in shapes]
