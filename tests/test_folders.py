"""Image folders: layouts, formats, sizes, colour modes, bad files, class names."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from arcface_keras.toolkit import data, models
from arcface_keras.toolkit.data import folders
from arcface_keras.errors import DataError
from arcface_keras.toolkit.training import TrainConfig, train

CLASSES = ["café crème", "Ελληνικά", "plain"]  # spaces and non-ASCII letters


def _pattern(label, index, size=(12, 12)):
    """A gray image whose pixels tell its class and index apart."""
    rng = np.random.default_rng(1000 * label + index)
    image = rng.integers(0, 100, size=size).astype("uint8")
    image[: size[0] // 2, :] += np.uint8(50 * label + 10)
    return image


def _write(path, array, fmt, mode=None):
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, format=fmt)


def _folder(root, per_class=6, fmt="PNG", extension=".png"):
    expected = {}
    for label, name in enumerate(CLASSES):
        os.makedirs(root / name, exist_ok=True)
        for index in range(per_class):
            array = _pattern(label, index)
            path = root / name / f"{index}{extension}"
            _write(path, array, fmt)
            expected[str(path)] = (array, label)
    return expected


def _decoded(images, labels):
    batches = list(data.make_dataset(images, labels, batch_size=7))
    return (np.concatenate([x.numpy() for x, _ in batches]).astype("uint8"),
            np.concatenate([y.numpy() for _, y in batches]))


def test_class_folders_yield_exactly_their_images_and_labels(tmp_path):
    expected = _folder(tmp_path)
    splits = data.load(data=str(tmp_path))
    assert splits.class_names == sorted(CLASSES) and splits.num_classes == 3 and splits.image_shape == (12, 12, 1)
    names = {name: sorted(CLASSES).index(name) for name in CLASSES}
    seen = set()
    for images, labels in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)):
        pixels, decoded_labels = _decoded(images, labels)
        for path, array, label in zip(images.paths, pixels, decoded_labels):
            original, original_label = expected[path]
            np.testing.assert_array_equal(array[..., 0], original)
            assert label == names[CLASSES[original_label]]
            seen.add(path)
    assert seen == set(expected)  # every image in exactly one split
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 18
    assert "stratified" in splits.details["splits"]


def test_split_folders_are_kept(tmp_path):
    for split, count in (("train", 5), ("val", 2), ("test", 3)):
        _folder(tmp_path / split, per_class=count)
    splits = data.load(data=str(tmp_path))
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (15, 6, 9)
    assert all("/test/" in p for p in splits.x_test.paths) and all("/val/" in p for p in splits.x_val.paths)
    assert splits.details["splits"] == "train/, val/ and test/ folders"


@pytest.mark.parametrize("fmt, extension, mode, lossless", [
    ("PNG", ".png", "1", True), ("PNG", ".png", "I;16", True), ("PNG", ".png", "P", True), ("PNG", ".png", "RGB", True),
    ("JPEG", ".jpg", "L", False), ("BMP", ".bmp", "L", True), ("GIF", ".gif", "L", True),
])
def test_formats_decode_to_the_same_pixels(tmp_path, fmt, extension, mode, lossless):
    array = (np.arange(144).reshape(12, 12) * 7 % 256).astype("uint8")
    if mode == "1":
        array = np.where(array > 128, 255, 0).astype("uint8")
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
        for index in range(3):
            path = tmp_path / name / f"{index}{extension}"
            if mode == "I;16":
                Image.fromarray(array.astype("uint16") * 257).save(path)  # 16-bit: 0…65535
            else:
                _write(path, array, fmt, mode)
    splits = data.load(data=str(tmp_path), color_mode="grayscale")
    pixels = splits.x_train[:1].load()[0, ..., 0].astype(int)
    if lossless:
        np.testing.assert_array_equal(pixels, array)
    else:
        assert np.abs(pixels - array).mean() < 8


def test_colour_is_decided_from_the_data_or_the_flag(tmp_path):
    _folder(tmp_path)
    rgb = np.zeros((12, 12, 3), dtype="uint8")
    rgb[..., 0] = 200
    _write(tmp_path / "plain" / "colour.png", rgb, "PNG")
    assert data.load(data=str(tmp_path)).image_shape == (12, 12, 3)
    gray = data.load(data=str(tmp_path), color_mode="grayscale")
    assert gray.image_shape == (12, 12, 1)
    with pytest.raises(DataError, match="--color-mode"):
        data.load(data=str(tmp_path), color_mode="sepia")


def test_mixed_sizes_need_image_size(tmp_path):
    _folder(tmp_path)
    _write(tmp_path / "plain" / "big.png", np.full((20, 30), 128, dtype="uint8"), "PNG")
    with pytest.raises(DataError, match=r"images differ in size .*--image-size H W"):
        data.load(data=str(tmp_path))
    splits = data.load(data=str(tmp_path), image_size=(16, 16))
    assert splits.image_shape == (16, 16, 1)
    everything = np.concatenate([splits.x_train.load(), splits.x_val.load(), splits.x_test.load()])
    assert everything.shape[1:] == (16, 16, 1) and everything.dtype == np.uint8


def test_corrupt_files_are_skipped_and_reported(tmp_path):
    _folder(tmp_path)
    (tmp_path / "plain" / "broken.png").write_bytes(Image.new("L", (12, 12)).tobytes()[:50])
    truncated = (tmp_path / "plain" / "0.png").read_bytes()[:40]
    (tmp_path / "plain" / "truncated.png").write_bytes(truncated)
    (tmp_path / "plain" / "notes.txt").write_text("ignored: not an image extension")
    splits = data.load(data=str(tmp_path))
    skipped = splits.details["skipped_files"]
    assert skipped["count"] == 2 and {os.path.basename(p) for p in skipped["first"]} == {"broken.png", "truncated.png"}
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 18
    list(data.make_dataset(splits.x_train, splits.y_train, batch_size=4, training=True))  # streams without error


def test_folders_without_readable_images_are_refused(tmp_path):
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    for name in ("a", "b"):
        (tmp_path / name / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="holds no readable image"):
        data.load(data=str(tmp_path))
    empty = tmp_path / "empty"
    os.makedirs(empty / "a")
    with pytest.raises(DataError, match="no class subfolder holding image files"):
        data.load(data=str(empty))


def test_files_stream_with_augmentation_cache_and_balanced_batches(tmp_path):
    _folder(tmp_path)
    splits = data.load(data=str(tmp_path))
    for cache in (None, "memory", str(tmp_path / "cache")):
        dataset = data.make_dataset(splits.x_train, splits.y_train, batch_size=4, training=True, augment="shift",
                                    cache=cache)
        for _ in range(2):  # two epochs: the second reads the cache
            labels = np.concatenate([y.numpy() for _, y in dataset])
            assert sorted(labels.tolist()) == sorted(splits.y_train.tolist())
    batch, labels = next(iter(data.balanced_dataset(splits.x_train, splits.y_train, 3, 2)))
    assert batch.shape == (6, 12, 12, 1) and len(set(labels.numpy().tolist())) == 3


@pytest.mark.parametrize("cache", [None, "memory", "file"])
def test_cached_files_are_shuffled_across_classes_every_epoch(tmp_path, monkeypatch, cache):
    # The file list is sorted by class; 400 images of 10 classes with a buffer of 20 stand for
    # 54,000 images with the real buffer of 10,000: a batch must hold about 10 % of each class.
    monkeypatch.setattr(data.pipelines, "SHUFFLE_BUFFER_CACHED", 20)
    paths, labels = [], []
    for label in range(10):
        os.makedirs(tmp_path / f"c{label}")
        for index in range(40):
            path = tmp_path / f"c{label}" / f"{index}.png"
            _write(path, _pattern(label % 4, index, size=(4, 4)), "PNG")
            paths.append(str(path))
            labels.append(label)
    images = folders.ImageFiles(np.array(paths), (4, 4, 1))
    dataset = data.make_dataset(images, np.array(labels), batch_size=40, training=True,
                                cache=str(tmp_path / "cache") if cache == "file" else cache)
    epochs = [[y.numpy() for _, y in dataset] for _ in range(3)]
    for batches in epochs:
        assert sorted(np.concatenate(batches).tolist()) == sorted(labels)
        largest = np.mean([np.bincount(batch, minlength=10).max() / len(batch) for batch in batches])
        assert largest < 0.25, largest  # by class order: 0.5 or more; at random: about 0.18
    assert not np.array_equal(np.concatenate(epochs[1]), np.concatenate(epochs[2]))  # a new order each epoch


@pytest.mark.slow
def test_folder_run_keeps_class_names_in_metrics_report_and_saved_model(tmp_path):
    _folder(tmp_path / "images", per_class=10)
    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=str(tmp_path / "images"), epochs=2, batch_size=8, output=str(folder), **TINY))
    assert metrics["class_names"] == sorted(CLASSES) and metrics["dataset"] == "images"
    assert metrics["data"]["source"] == "image folder" and metrics["data"]["test"] == 6
    assert "Ελληνικά" in (folder / "report.md").read_text(encoding="utf-8")
    code = textwrap.dedent(
        f"""
        import json, numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(folder / "saved_model")!r}).signatures["serving_default"]
        out = serve(images=tf.constant(np.zeros((2, 12, 12, 1), "float32")))
        print(json.dumps([n.decode() for n in out["class_name"].numpy()]), int(out["class_id"].numpy()[0]))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names, class_id = result.stdout.strip().rsplit(" ", 1)
    assert json.loads(names)[0] == sorted(CLASSES)[int(class_id)]


def test_classes_keeps_the_matching_class_folders_relabelled(tmp_path):
    _folder(tmp_path)
    splits = data.load(data=str(tmp_path), classes=["café*", "plain"])
    assert splits.class_names == ["café crème", "plain"] and splits.num_classes == 2
    labels = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert sorted(set(labels.tolist())) == [0, 1] and len(labels) == 12
    assert all("Ελληνικά" not in path for path in splits.x_train.paths)
    with pytest.raises(DataError, match="matches 1 class"):
        data.load(data=str(tmp_path), classes=["plain"])


@pytest.mark.slow
def test_patch_whitening_adapts_to_an_image_folder(tmp_path):
    _folder(tmp_path / "images", per_class=10)
    options = {**TINY, "backbone_options": {"widths": (8, 16), "whiten": 2}}
    metrics = train(TrainConfig(data=str(tmp_path / "images"), backbone="fastnet", epochs=1, batch_size=8,
                                output=str(tmp_path / "run"), **options))
    assert metrics["data"]["source"] == "image folder"
    import keras

    whiten = models.parts(keras.models.load_model(tmp_path / "run" / "model.keras"))[1].get_layer("whiten")
    assert np.abs(keras.ops.convert_to_numpy(whiten.kernel)).sum() > 0
