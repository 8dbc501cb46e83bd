"""Partial FC: the head's `sample_rate`, its loss and the row-sparse optimizer."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import arcface_keras  # noqa: F401  (registers the layers)
from arcface_keras import AngularMarginLayer, ArcMarginLayer, PartialFCCrossentropy, PartialSGD
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig, train
from conftest import TINY

C, D, B = 20, 8, 4


def _heads(rate, seed=1, **options):
    exact = AngularMarginLayer(C, scale=16.0, m2=0.3, **options)
    partial = AngularMarginLayer(C, scale=16.0, m2=0.3, sample_rate=rate, seed=seed, **options)
    for head in (exact, partial):
        head.build([(None, D), (None,)])
    partial.center_rows.assign(tf.transpose(exact.kernel))
    return exact, partial


def _naive_arcface(x, centers, labels, scale, margin):
    """NumPy ArcFace logits (B, C): s·cos θ, s·cos(θ + m) at the label."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosine = unit @ (centers / np.linalg.norm(centers, axis=0, keepdims=True))
    logits = scale * cosine
    theta = np.arccos(np.clip(cosine[np.arange(len(labels)), labels], -1, 1))
    logits[np.arange(len(labels)), labels] = scale * np.cos(theta + margin)
    return logits


@pytest.mark.parametrize("sub_centers", [1, 3])
def test_sampling_every_class_gives_the_exact_cross_entropy(rng, sub_centers):
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([3, 3, 7, 19], dtype="int32")
    exact, partial = _heads(0.999, sub_centers=sub_centers)  # ceil(0.999·20) = 20: every class sampled
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(y, exact([x, y]))
    got = PartialFCCrossentropy(reduction=None)(y, partial([x, y]))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    if sub_centers == 1:  # and the exact head against NumPy
        naive = _naive_arcface(x.astype("float64"), keras.ops.convert_to_numpy(exact.kernel), y, 16.0, 0.3)
        shifted = naive - naive.max(axis=1, keepdims=True)
        ce = -(shifted[np.arange(B), y] - np.log(np.exp(shifted).sum(axis=1)))
        np.testing.assert_allclose(got, ce, rtol=1e-4)


def test_partial_logits_hold_the_target_and_a_sample_with_every_label(rng):
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([3, 3, 7, 19], dtype="int32")
    exact, partial = _heads(0.3)
    full = keras.ops.convert_to_numpy(exact([x, y]))
    out = keras.ops.convert_to_numpy(partial([x, y]))
    assert out.shape == (B, 1 + math.ceil(0.3 * C))
    np.testing.assert_allclose(out[:, 0], full[np.arange(B), y], rtol=1e-5)
    plain = keras.ops.convert_to_numpy(exact(x))
    for row in range(B):
        others = np.sort(out[row, 1:][out[row, 1:] > -1e8])
        assert len(others) == out.shape[1] - 2  # its own class masked, once
        # every other column is the plain logit of some other class
        candidates = np.delete(plain[row], y[row])
        assert all(np.isclose(candidates, value, rtol=1e-5).any() for value in others)
    # without labels the layer scores every class, as the exact head
    np.testing.assert_allclose(keras.ops.convert_to_numpy(partial(x)), plain, rtol=1e-5)


def test_a_batch_with_more_classes_than_the_sample_keeps_them_all(rng):
    x = rng.normal(size=(12, D)).astype("float32")
    y = np.arange(12, dtype="int32")
    _, partial = _heads(0.1)  # ceil(0.1·20) = 2 < 12 classes in the batch
    out = keras.ops.convert_to_numpy(partial([x, y]))
    assert out.shape == (12, 1 + 12)


def test_gradients_reach_only_the_sampled_centers(rng):
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([3, 3, 7, 19], dtype="int32")
    _, partial = _heads(0.25)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(PartialFCCrossentropy()(y, partial([x, y])))
    gradient = tape.gradient(loss, partial.center_rows.value)
    assert isinstance(gradient, tf.IndexedSlices)
    rows = set(np.unique(gradient.indices.numpy()).tolist())
    assert {3, 7, 19} <= rows and len(rows) == math.ceil(0.25 * C)


@pytest.mark.parametrize("nesterov", [False, True])
def test_partial_sgd_updates_the_sampled_rows_as_sgd_and_leaves_the_others(rng, nesterov):
    weights = rng.normal(size=(10, 4)).astype("float32")
    rows = tf.constant([1, 4, 4, 7])
    values = rng.normal(size=(4, 4)).astype("float32")
    dense = tf.math.unsorted_segment_sum(values, rows, 10).numpy()
    options = dict(learning_rate=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    sparse_var, dense_var = keras.Variable(weights), keras.Variable(weights)
    head = ArcMarginLayer(10, sample_rate=0.5)
    head._centers = sparse_var  # exclude_sparse finds the centers through the layer
    sparse_opt = PartialSGD(**options).exclude_sparse(head)
    dense_opt = keras.optimizers.SGD(**options)
    for _ in range(3):  # momentum builds up over the steps
        sparse_opt.apply([tf.IndexedSlices(tf.constant(values), rows, tf.constant([10, 4]))], [sparse_var])
        dense_opt.apply([tf.constant(dense)], [dense_var])
    got, expected = keras.ops.convert_to_numpy(sparse_var), keras.ops.convert_to_numpy(dense_var)
    touched = [1, 4, 7]
    np.testing.assert_allclose(got[touched], expected[touched], rtol=1e-5, atol=1e-6)
    untouched = [r for r in range(10) if r not in touched]
    np.testing.assert_array_equal(got[untouched], weights[untouched])  # no step, no decay, no momentum
    assert not np.allclose(expected[untouched], weights[untouched])  # where Keras' SGD decays every row


def test_a_partial_head_saves_and_loads(tmp_path, rng):
    images = keras.Input((D,))
    labels = keras.Input((), dtype="int32")
    head = ArcMarginLayer(C, sample_rate=0.3, seed=5, name="head")
    model = keras.Model([images, labels], head([images, labels]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    restored = loaded.get_layer("head")
    assert restored.sample_rate == 0.3 and restored.seed == 5 and tuple(restored.center_rows.shape) == (C, D)
    assert tuple(restored.kernel.shape) == (D, C)  # the layer's contract: kernel is (embedding_dim, num_classes)
    x = rng.normal(size=(B, D)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(head(x)), rtol=1e-6)


def test_sample_rate_is_checked():
    with pytest.raises(ValueError, match="sample_rate"):
        ArcMarginLayer(10, sample_rate=0.0)
    with pytest.raises(UserInputError, match="--sample-rate .* needs a margin head"):
        TrainConfig(loss="softmax", sample_rate=0.5).validate()
    with pytest.raises(UserInputError, match="--sample-rate .* SGD"):
        TrainConfig(optimizer="adam", sample_rate=0.5).validate()


def test_a_run_trains_with_partial_fc(tmp_path):
    folder = tmp_path / "run"
    train(TrainConfig(epochs=3, batch_size=50, sample_rate=0.3, output=str(folder), **TINY))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["sample_rate"] == 0.3
    assert metrics["test_accuracy"] > 0.5  # 10 digits: chance is 0.1



@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_keras_one_hot_and_numpy(rng, smoothing):
    from arcface_keras.losses import SmoothedSparseCrossentropy

    logits = rng.normal(size=(6, 5)).astype("float32") * 4
    labels = rng.integers(0, 5, size=6)
    got = keras.ops.convert_to_numpy(SmoothedSparseCrossentropy(smoothing, reduction=None)(labels, logits))
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing, reduction=None)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(keras_ce(np.eye(5)[labels], logits)), rtol=1e-5)
    shifted = logits.astype("float64") - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full((6, 5), smoothing / 5) + (1 - smoothing) * np.eye(5)[labels]
    np.testing.assert_allclose(got, -(target * log_p).sum(axis=1), rtol=1e-5)
    # Partial FC's loss: the same over the sampled classes, the masked own column left out
    partial = np.concatenate([logits[np.arange(6), labels][:, None],
                              np.where(np.eye(5)[labels] > 0, -1e9, logits)], axis=1).astype("float32")
    got_partial = keras.ops.convert_to_numpy(PartialFCCrossentropy(smoothing, reduction=None)(labels, partial))
    np.testing.assert_allclose(got_partial, got, rtol=1e-5)
