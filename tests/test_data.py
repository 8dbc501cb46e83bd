import gzip
import os
import pickle
import struct
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from arcface_keras.toolkit import data, models
from arcface_keras.toolkit.data import DataError


def _arrays(rng, shape=(28, 28), n_train=60, n_test=20, classes=3):
    return (
        rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        np.arange(n_train) % classes,
        rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        np.arange(n_test) % classes,
    )


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype("uint8").tobytes())


def test_npz_grayscale_and_colour(tmp_path, rng):
    for shape in ((28, 28), (32, 32, 3)):
        x_train, y_train, x_test, y_test = _arrays(rng, shape)
        path = tmp_path / f"set{len(shape)}.npz"
        np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        splits = data.load(data=str(path), validation_fraction=0.2)
        assert splits.image_shape == (shape + (1,))[:3]
        assert len(splits.y_train) + len(splits.y_val) == 60 and len(splits.y_test) == 20
        assert splits.num_classes == 3
        np.testing.assert_array_equal(splits.x_test.reshape(x_test.shape), x_test)


def test_idx_folder_round_trip(tmp_path, rng):
    x_train, y_train, x_test, y_test = _arrays(rng)
    for key, array in zip(("x_train", "y_train", "x_test", "y_test"), (x_train, y_train, x_test, y_test)):
        _write_idx(tmp_path / data.MNIST_IDX_FILES[key], array)
    arrays = data.load_local(str(tmp_path))
    for got, expected in zip(arrays, (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(got, expected)


def _write_cifar(folder, rng, protocol=2):
    expected = []
    for name in data.CIFAR_BATCHES:
        images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=6))
        batch = {b"data": images.transpose(0, 3, 1, 2).reshape(6, -1), b"labels": [int(v) for v in labels]}
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file, protocol=protocol)
        expected.append((images, labels))
    return expected


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar_batches(tmp_path, rng, protocol):
    expected = _write_cifar(tmp_path, rng, protocol)
    x_train, y_train, x_test, y_test = data.load_local(str(tmp_path))
    np.testing.assert_array_equal(x_train, np.concatenate([e[0] for e in expected[:5]]))
    np.testing.assert_array_equal(y_test, expected[5][1])
    assert data.load(data=str(tmp_path)).name == "cifar10"


def test_cifar_unpickler_refuses_code(tmp_path, rng):
    _write_cifar(tmp_path, rng)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    with open(tmp_path / "test_batch", "wb") as file:
        pickle.dump({b"data": Evil(), b"labels": []}, file)
    with pytest.raises(DataError, match="refusing"):
        data.load_local(str(tmp_path))


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x_train=np.zeros((4, 28, 28), "uint8"), y_train=np.zeros(4, "int64")), "lacks"),
        (dict(x_train=np.zeros((4, 28, 28), "uint8"), y_train=np.zeros(4, "int64"), x_test=np.zeros((2, 32, 32), "uint8"), y_test=np.zeros(2, "int64")), "differ in shape"),
        (dict(x_train=np.zeros((4, 28, 28), "float32"), y_train=np.zeros(4, "int64"), x_test=np.zeros((2, 28, 28), "float32"), y_test=np.zeros(2, "int64")), "uint8"),
        (dict(x_train=np.zeros((4, 28, 28), "uint8"), y_train=np.zeros(3, "int64"), x_test=np.zeros((2, 28, 28), "uint8"), y_test=np.zeros(2, "int64")), "3 labels"),
        (dict(x_train=np.zeros((4, 28, 28), "uint8"), y_train=np.zeros(4, "float32"), x_test=np.zeros((2, 28, 28), "uint8"), y_test=np.zeros(2, "int64")), "integer"),
        (dict(x_train=np.array([object()] * 4), y_train=np.zeros(4, "int64"), x_test=np.zeros((2, 28, 28), "uint8"), y_test=np.zeros(2, "int64")), "not a readable"),
    ],
)
def test_malformed_npz_gets_clear_error(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        data.load(data=str(path))


def test_missing_and_unknown_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load(data=str(tmp_path / "nope.npz"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not an .npz"):
        data.load(data=str(tmp_path / "notes.txt"))
    with pytest.raises(DataError, match="neither"):
        data.load(data=str(tmp_path))


def test_unknown_tfds_name():
    with pytest.raises(DataError, match="Unknown data set"):
        data.load("no_such_dataset_xyz")


def test_tfds_without_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data.sources, "network_available", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(DataError, match="--data"):
        data.load("mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 60


def test_network_probe_answers_quickly():
    start = time.perf_counter()
    assert data.network_available("127.0.0.1", 9, timeout=2.0) is False  # nothing listens on port 9
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3)), ("fashion_mnist", (28, 28, 1))])
def test_tfds_path_with_mock_data(name, shape, tmp_path, monkeypatch):
    monkeypatch.setattr(data.sources, "network_available", lambda *a, **k: True)
    with tfds.testing.mock_data(num_examples=40):
        splits = data.load(name, data_dir=str(tmp_path), validation_fraction=0.25)
    assert splits.image_shape == shape and splits.x_train.dtype == np.uint8
    assert len(splits.y_train) + len(splits.y_val) == 40
    if name in data.KNOWN_STATISTICS:
        assert splits.mean == data.KNOWN_STATISTICS[name][0] and splits.std == data.KNOWN_STATISTICS[name][1]
    else:  # statistics computed from the training split
        np.testing.assert_allclose(splits.mean, splits.x_train.reshape(-1, shape[-1]).mean(0) / 255.0)


def test_known_statistics_match_the_report():
    assert data.KNOWN_STATISTICS["mnist"] == ((0.1307,), (0.3081,))
    assert data.KNOWN_STATISTICS["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def test_normalization_layer_applies_statistics(rng):
    mean, std = data.KNOWN_STATISTICS["cifar10"]
    train_model, _ = models.build_models(10, (32, 32, 3), mean, std, loss="softmax", embedding_dim=8, backbone_options={"widths": (4,)})
    images = rng.integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    normalized = models.parts(train_model)[0](images).numpy()
    np.testing.assert_allclose(normalized, (images / 255.0 - np.array(mean)) / np.array(std), rtol=1e-4, atol=1e-4)


def test_digits_embedded_split_is_fixed():
    first, second = data.load_digits(), data.load_digits()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    x_train, y_train, x_test, y_test = first
    assert x_train.shape == (1438, 8, 8, 1) and x_test.shape == (359, 8, 8, 1) and x_train.max() == 255


def test_stratified_subsets(rng):
    x = np.zeros((1000, 2, 2, 1), "uint8")
    y = np.repeat(np.arange(10), 100)
    x_train, y_train, x_val, y_val = data.stratified_split(x, y, 0.1, seed=1)
    assert np.bincount(y_val).tolist() == [10] * 10 and np.bincount(y_train).tolist() == [90] * 10
    full = data.load("digits", seed=3)
    digits = data.load("digits", train_samples=500, seed=3)
    counts = np.bincount(digits.y_train, minlength=10)
    quotas = np.bincount(full.y_train, minlength=10) * 500 / len(full.y_train)
    assert counts.sum() == 500 and np.all(np.abs(counts - quotas) < 1)


def test_pipeline_batches_and_shuffles(rng):
    images = rng.integers(0, 256, size=(250, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(250) % 5
    dataset = data.make_dataset(images, labels, batch_size=100, training=True, seed=0)
    epochs = [[(x.numpy(), y.numpy()) for x, y in dataset] for _ in range(2)]
    assert [len(b[1]) for b in epochs[0]] == [100, 100, 50]
    assert epochs[0][0][0].dtype == np.float32 and epochs[0][0][0].max() > 1.0  # raw 0–255
    assert not np.array_equal(epochs[0][0][1], epochs[1][0][1])  # reshuffled each epoch
    seen = np.sort(np.concatenate([b[1] for b in epochs[0]]))
    np.testing.assert_array_equal(seen, np.sort(labels))
    test = data.make_dataset(images, labels, batch_size=100)
    np.testing.assert_array_equal(next(iter(test))[0].numpy(), images[:100].astype("float32"))


def test_augmentation_is_padded_crop_and_flip(rng):
    images = rng.integers(1, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64)
    dataset = data.make_dataset(images, labels, batch_size=64, training=True, augment="crop-flip", seed=0)
    batch, order = next(iter(dataset))
    flips = 0
    for augmented, index in zip(batch.numpy(), order.numpy()):
        padded = np.pad(images[index].astype("float32"), ((4, 4), (4, 4), (0, 0)))
        candidates = [padded[dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        plain = any(np.array_equal(augmented, c) for c in candidates)
        flipped = any(np.array_equal(augmented, c[:, ::-1]) for c in candidates)
        assert plain or flipped
        flips += flipped and not plain
    assert 10 < flips < 54  # about half are flipped


@pytest.mark.parametrize("augment", [None, "crop-flip"])
def test_balanced_sampler_yields_p_by_k_batches(augment, rng):
    labels = np.repeat(np.arange(6), [30, 30, 30, 30, 30, 3])  # class 5 has fewer than K images
    images = rng.integers(0, 256, size=(len(labels), 8, 8, 3), dtype=np.uint8)
    dataset = data.balanced_dataset(images, labels, classes_per_batch=4, samples_per_class=5, seed=1, augment=augment)
    seen = set()
    for batch_images, batch_labels in dataset.take(20):
        counts = np.bincount(batch_labels.numpy(), minlength=6)
        assert batch_images.shape == (20, 8, 8, 3) and batch_images.dtype == "float32"
        assert sorted(counts[counts > 0].tolist()) == [5, 5, 5, 5]
        seen.update(np.flatnonzero(counts))
    assert seen == set(range(6))
    assert data.balanced_steps(183, 4, 5) == 9
    with pytest.raises(DataError, match="classes_per_batch"):
        data.balanced_dataset(images, labels, classes_per_batch=7, samples_per_class=5)


@pytest.mark.parametrize("ratio", [1.0, 10.0, 100.0])
def test_long_tail_cut_has_the_requested_counts(ratio, rng):
    labels = np.repeat(np.arange(10), 500)
    images = np.zeros((len(labels), 2, 2, 1), "uint8")
    x, y = data.long_tail(images, labels, ratio, seed=0)
    counts = np.bincount(y, minlength=10)
    expected = np.floor(500 * ratio ** -(np.arange(10) / 9)).astype(int)
    np.testing.assert_array_equal(counts, np.maximum(expected, 1))
    assert counts[0] == 500 and counts[-1] == int(500 / ratio)
    with pytest.raises(DataError, match="imbalance_ratio"):
        data.long_tail(images, labels, 0.5)


def test_shift_flip_augmentation_shifts_by_two_pixels_and_mirrors_about_half(rng):
    images = rng.integers(1, 256, size=(200, 12, 12, 3), dtype=np.uint8)
    dataset = data.make_dataset(images, np.arange(200), batch_size=200, training=True, augment="shift-flip", seed=0)
    batch, order = next(iter(dataset))
    mirrored = 0
    for augmented, index in zip(batch.numpy(), order.numpy()):
        padded = np.pad(images[index].astype("float32"), ((2, 2), (2, 2), (0, 0)))
        views = {flip: [(dy, dx) for dy in range(5) for dx in range(5)
                        if np.array_equal(augmented[:, ::-1] if flip else augmented, padded[dy:dy + 12, dx:dx + 12])]
                 for flip in (False, True)}
        assert len(views[False]) + len(views[True]) == 1
        mirrored += bool(views[True])
    assert 70 < mirrored < 130


def test_shift_augmentation_moves_without_flipping(rng):
    images = rng.integers(1, 256, size=(64, 28, 28, 1), dtype=np.uint8)
    dataset = data.make_dataset(images, np.arange(64), batch_size=64, training=True, augment="shift", seed=0)
    batch, order = next(iter(dataset))
    offsets = set()
    for augmented, index in zip(batch.numpy(), order.numpy()):
        padded = np.pad(images[index].astype("float32"), ((2, 2), (2, 2), (0, 0)))
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(augmented, padded[dy : dy + 28, dx : dx + 28])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 5
    with pytest.raises(DataError, match="augment"):
        data.augmentation("rotate")


def test_cutout_fills_one_clipped_square_with_the_image_mean(rng):
    images = rng.integers(1, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    sizes = []
    for image in images:
        out = data.cut_out(image, data.CUTOUT_SIZE).numpy()
        changed = np.any(out != image, axis=-1)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert changed.sum() == len(rows) * len(cols)  # one axis-aligned rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        assert len(rows) <= data.CUTOUT_SIZE and len(cols) <= data.CUTOUT_SIZE
        mean = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        np.testing.assert_array_equal(out[changed], np.broadcast_to(mean, (changed.sum(), 3)))
        np.testing.assert_array_equal(out[~changed], image[~changed])
        sizes.append((len(rows), len(cols)))
    assert (data.CUTOUT_SIZE, data.CUTOUT_SIZE) in sizes  # unclipped squares occur
    assert any(r < data.CUTOUT_SIZE for r, _ in sizes)  # and squares clipped at the border


def test_batch_cutout_gives_each_image_its_own_square_and_mean(rng):
    images = rng.integers(1, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    out = data.cut_out_batch(images, data.CUTOUT_SIZE).numpy()
    corners = set()
    for image, result in zip(images, out):
        changed = np.any(result != image, axis=-1)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert changed.sum() == len(rows) * len(cols) and len(rows) <= data.CUTOUT_SIZE >= len(cols)
        mean = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        np.testing.assert_array_equal(result[changed], np.broadcast_to(mean, (changed.sum(), 3)))
        corners.add((rows[0], cols[0]))
    assert len(corners) > 50  # independent squares, not one square for the batch


def test_batch_crop_flip_gives_each_image_its_own_offset_and_flip(rng):
    images = rng.integers(1, 256, size=(128, 16, 16, 3), dtype=np.uint8)
    out = data.batch_augmentation("crop-flip")(images).numpy()
    seen = set()
    for image, result in zip(images, out):
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                   if np.array_equal(result, padded[dy:dy + 16, dx:dx + 16][:, ::-1] if f else padded[dy:dy + 16, dx:dx + 16])]
        assert len(matches) >= 1
        seen.add(matches[0])
    assert len(seen) > 40 and {m[2] for m in seen} == {0, 1}


def test_crop_flip_cutout_pipeline_masks_each_augmented_image(rng):
    images = rng.integers(1, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    dataset = data.make_dataset(images, np.arange(64), batch_size=64, training=True, augment="crop-flip-cutout",
                                seed=0)
    batch, order = next(iter(dataset))
    for augmented, index in zip(batch.numpy(), order.numpy()):
        padded = np.pad(images[index].astype("float32"), ((4, 4), (4, 4), (0, 0)))
        candidates = [padded[dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        candidates += [c[:, ::-1] for c in candidates]
        # Some crop/flip agrees with the output everywhere except a square of at most 12×12 pixels.
        assert min(np.any(augmented != c, axis=-1).sum() for c in candidates) <= data.CUTOUT_SIZE ** 2


def _flip_and_offset(augmented, image, padding, mode):
    """[(flipped, dy, dx)] of the crops of `image` padded in `mode` that give `augmented`."""
    size = image.shape[0]
    padded = np.pad(image.astype("float32"), ((padding, padding), (padding, padding), (0, 0)), mode=mode)
    return [(flip, dy, dx) for flip in (False, True) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
            if np.array_equal(augmented[:, ::-1] if flip else augmented, padded[dy:dy + size, dx:dx + size])]


def test_reflect_padding_fills_the_border_with_the_mirrored_image(rng):
    images = rng.integers(1, 256, size=(100, 12, 12, 3), dtype=np.uint8)
    dataset = data.make_dataset(images, np.arange(100), batch_size=100, training=True, augment="shift-flip", seed=0,
                                pad_mode="reflect")
    batch, order = next(iter(dataset))
    assert not np.any(batch.numpy() == 0)  # no zero border: the images have no zero pixel
    shifted = 0
    for augmented, index in zip(batch.numpy(), order.numpy()):
        matches = _flip_and_offset(augmented, images[index], 2, "reflect")
        assert len(matches) == 1
        shifted += matches[0][1:] != (2, 2)
    assert shifted > 50
    with pytest.raises(DataError, match="pad_mode='wrap'"):
        data.batch_augmentation("shift-flip", "wrap")


def test_alternating_flip_mirrors_each_image_in_every_other_epoch(rng):
    import tensorflow as tf

    images = rng.integers(1, 256, size=(64, 12, 12, 3), dtype=np.uint8)
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = data.make_dataset(images, np.arange(64), batch_size=16, training=True, augment="crop-flip", seed=0,
                                flip_epoch=epoch)
    seen = {}
    for value in (0, 1, 2):
        epoch.assign(value)
        for batch, order in dataset:
            for augmented, index in zip(batch.numpy(), order.numpy()):
                (flip, _, _), = _flip_and_offset(augmented, images[index], 4, "constant")
                seen.setdefault(int(index), []).append(flip)
    assert sorted(seen) == list(range(64))
    for index, flips in seen.items():  # mirrored where index + epoch is odd
        assert flips == [index % 2 == 1, index % 2 == 0, index % 2 == 1], index


def test_epoch_counter_sets_the_epoch_before_the_epochs_batches_are_drawn():
    import keras
    import tensorflow as tf

    from arcface_keras.toolkit.callbacks import EpochCounter

    class Mirrored(keras.Model):  # counts the batch's mirrored images instead of training
        def train_step(self, batch):
            images, _ = batch
            return {"mirrored": tf.reduce_sum(tf.cast(images[:, 0, 0, 0] > 127, tf.float32))}

    images = np.zeros((5, 8, 8, 1), dtype=np.uint8)
    images[:, :, 4:] = 255  # dark left half, bright right half: mirrored images start bright
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = data.make_dataset(images, np.zeros(5), batch_size=5, training=True, augment="shift-flip",
                                pad_mode="reflect", flip_epoch=epoch)
    inputs = keras.Input((8, 8, 1))
    model = Mirrored(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    model.compile()
    history = model.fit(dataset, epochs=4, callbacks=[EpochCounter(epoch)], verbose=0, shuffle=False)
    assert history.history["mirrored"] == [2.0, 3.0, 2.0, 3.0]  # odd indices in even epochs, even ones in odd epochs
