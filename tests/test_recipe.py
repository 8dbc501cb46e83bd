"""The fast recipe's parts: patch whitening, Dirac init, shift TTA, BN-shift learning rate."""

import json

import keras
import numpy as np
import pytest
from conftest import TINY

from arcface_keras import backbones, optimizers, tta, whitening
from arcface_keras.toolkit import models, training
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig, train


def naive_patches(images, k):
    n, h, w, c = images.shape
    rows = [images[i, y:y + k, x:x + k, :].reshape(-1) for i in range(n) for y in range(h - k + 1) for x in range(w - k + 1)]
    return np.array(rows, dtype=np.float64)  # flattened (kh, kw, C), the conv kernel's order


def test_patch_whitening_whitens_the_patches_it_was_adapted_to(rng):
    images = rng.normal(size=(6, 7, 9, 3)) * np.array([1.0, 3.0, 0.2]) + rng.normal(size=(6, 7, 9, 1))  # correlated
    layer = whitening.PatchWhitening(kernel_size=2, epsilon=1e-8)
    layer.adapt(images)
    out = keras.ops.convert_to_numpy(layer(images.astype("float32")))
    assert out.shape == (6, 6, 8, 24)
    flat = out.reshape(-1, 24)
    second_moment = flat[:, :12].T @ flat[:, :12] / len(flat)
    np.testing.assert_allclose(second_moment, np.eye(12), atol=1e-3)
    np.testing.assert_allclose(flat[:, 12:], -flat[:, :12], atol=1e-6)  # the negated half
    # Against a naive reference: the output is patches · eigenvectors / √eigenvalue.
    patches = naive_patches(images, 2)
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    projected = np.abs(patches @ eigenvectors / np.sqrt(eigenvalues))  # signs of eigenvectors are arbitrary
    np.testing.assert_allclose(np.sort(np.abs(flat[:, :12]), axis=1), np.sort(projected, axis=1), atol=1e-3)
    assert [w.name for w in layer.trainable_weights] == ["bias"]


def test_dirac_conv_starts_as_the_identity_on_its_first_channels(rng):
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, kernel_initializer=whitening.Dirac(seed=1))
    images = rng.normal(size=(2, 5, 5, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(conv(images))
    np.testing.assert_allclose(out[..., :4], images, atol=1e-6)
    assert not np.allclose(out[..., 4:], 0)  # the rest keep their random start


def test_fastnet_airbench_options_build_save_and_refuse_bad_values(tmp_path):
    model = backbones.build("fastnet", (16, 16, 3), embedding_dim=8, widths=(4, 8, 8), whiten=2, activation="gelu",
                            dirac=True, bn_scale=False, bn_momentum=0.6)
    assert model.get_layer("whiten").output.shape == (None, 15, 15, 24)
    assert not model.get_layer("block1_a_bn").scale and model.get_layer("block1_a_bn").momentum == 0.6
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-5)
    with pytest.raises(ValueError, match="activation"):
        backbones.build("fastnet", (16, 16, 3), activation="tanh")
    with pytest.raises(ValueError, match="whiten"):
        backbones.build("fastnet", (16, 16, 3), whiten=-1)


def test_translate_shifts_with_reflection(rng):
    images = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    down = keras.ops.convert_to_numpy(tta.Translate(1)(images))
    up = keras.ops.convert_to_numpy(tta.Translate(-1)(images))
    np.testing.assert_array_equal(down, padded[:, 0:5, 0:6])
    np.testing.assert_array_equal(up, padded[:, 2:7, 2:8])
    np.testing.assert_array_equal(down[:, 1:, 1:], images[:, :-1, :-1])


@pytest.mark.parametrize("flip", [False, True])
def test_translate_test_weights_the_views_half_and_a_quarter_each(flip, rng):
    train_model, _ = models.build_models(4, (8, 8, 3), mean=(0.5,) * 3, std=(0.25,) * 3, embedding_dim=8,
                                         backbone_options={"widths": (4, 8)}, fixed_centers=False)
    images = rng.integers(0, 256, size=(3, 8, 8, 3)).astype("float32")
    out = models.inference_model(train_model, flip_test=flip, translate_test=True).predict(images, verbose=0)
    normalize, backbone, _ = models.parts(train_model)

    def embed(x):
        raw = keras.ops.convert_to_numpy(backbone(normalize(x), training=False))
        return (raw + keras.ops.convert_to_numpy(backbone(normalize(x[:, :, ::-1]), training=False))) / 2 if flip else raw

    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    mean = embed(images) / 2 + embed(padded[:, 2:10, 2:10]) / 4 + embed(padded[:, 0:8, 0:8]) / 4
    np.testing.assert_allclose(out["embedding"], mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)


def test_scaled_learning_rate_is_exactly_a_larger_step_and_leaves_weight_decay(rng):
    start = rng.normal(size=(3,)).astype("float32")
    gradient = rng.normal(size=(3,)).astype("float32")

    def one_step(factor, lr, weight_decay, steps=2):
        scaled, plain = keras.Variable(start), keras.Variable(start)
        optimizer = optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
        optimizer.build([scaled, plain])
        optimizer.scale_learning_rate([scaled], factor)
        for _ in range(steps):
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), scaled),
                                       (keras.ops.convert_to_tensor(gradient), plain)])
        return keras.ops.convert_to_numpy(scaled), keras.ops.convert_to_numpy(plain)

    scaled, plain = one_step(8.0, 0.1, 0.0)
    reference, _ = one_step(1.0, 0.8, 0.0)
    np.testing.assert_allclose(scaled, reference, rtol=1e-5)
    np.testing.assert_allclose(plain, one_step(1.0, 0.1, 0.0)[1], rtol=1e-6)
    # Decoupled decay is lr·wd·w whatever the factor: in a first step it takes the same off either way.
    decay = one_step(8.0, 0.1, 0.5, steps=1)[0] - one_step(8.0, 0.1, 0.0, steps=1)[0]
    np.testing.assert_allclose(decay, -0.1 * 0.5 * start, rtol=1e-4)
    np.testing.assert_allclose(decay, one_step(1.0, 0.1, 0.5, steps=1)[0] - one_step(1.0, 0.1, 0.0, steps=1)[0], atol=1e-6)


def test_batch_norm_shifts_are_every_beta():
    train_model, _ = models.build_models(4, (8, 8, 3), mean=(0.5,) * 3, std=(0.25,) * 3, embedding_dim=8,
                                         backbone="fastnet", backbone_options={"widths": (4, 8), "stem": 4})
    shifts = training.batch_norm_shifts(train_model)
    assert len(shifts) == 6 and all(v.path.endswith("beta") for v in shifts)


@pytest.mark.slow
def test_recipe_run_trains_with_every_option_and_evaluates_with_tta(synthetic, tmp_path):
    options = {**TINY, "backbone_options": {"widths": (8, 16, 16), "whiten": 2, "activation": "gelu", "dirac": True,
                                            "bn_scale": False, "bn_momentum": 0.6}}
    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=synthetic, backbone="fastnet", epochs=6, batch_size=20, lr=0.05,
                                label_smoothing=0.2, bn_bias_lr_factor=8.0, translate_test=True,
                                output=str(folder), **options))
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]
    stored = json.loads((folder / "config.json").read_text())
    assert stored["translate_test"] is True and stored["bn_bias_lr_factor"] == 8.0
    whiten = models.parts(keras.models.load_model(folder / "model.keras"))[1].get_layer("whiten")
    assert np.abs(keras.ops.convert_to_numpy(whiten.kernel)).sum() > 0  # adapted, and saved


def test_recipe_settings_are_checked_and_old_runs_keep_their_key():
    with pytest.raises(UserInputError, match="bn-bias-lr-factor.*Received: optimizer='adam'"):
        TrainConfig(optimizer="adam", bn_bias_lr_factor=2.0).validate()
    with pytest.raises(UserInputError, match="Received: bn_bias_lr_factor=0"):
        TrainConfig(bn_bias_lr_factor=0).validate()
    with pytest.raises(UserInputError, match="Received: translate_test='yes'"):
        TrainConfig(translate_test="yes").validate()


def test_ablation_steps_accumulate_and_merge_backbone_options():
    from arcface_keras.studies import ablation

    steps = ablation.cumulative([("a", {"backbone": "fastnet", "backbone_options": {"widths": [8]}}),
                                 ("b", {"lr": 0.4}), ("c", {"backbone_options": {"whiten": 2}})])
    assert steps[2][1] == {"backbone": "fastnet", "backbone_options": {"widths": [8], "whiten": 2}, "lr": 0.4}
    assert steps[0][1]["backbone_options"] == {"widths": [8]} and "lr" not in steps[0][1]
    for preset in ablation.STEPS:  # every preset step is a valid setting
        for _, settings in ablation.cumulative(ablation.STEPS[preset]):
            TrainConfig(**settings).validate()


@pytest.mark.slow
def test_ablation_runs_each_step_with_tta_and_writes_its_table(synthetic, tmp_path, monkeypatch):
    from arcface_keras.studies import ablation

    monkeypatch.setitem(ablation.STEPS, "mnist", [("start", {"backbone": "fastnet", "backbone_options": {"widths": (8, 16)}}),
                                                   ("+ smoothing", {"label_smoothing": 0.1})])
    base = TrainConfig(data=synthetic, epochs=2, batch_size=20, embedding_dim=16, verbose=0)
    summary = ablation.ablation(base, str(tmp_path / "study"), "mnist")
    assert [r["step"] for r in summary["rows"]] == ["start", "+ smoothing"]
    assert all(r["epochs"] == 2 and r["train_minutes"] > 0 for r in summary["rows"])
    stored = json.loads((tmp_path / "study" / "step1" / "config.json").read_text())
    assert stored["label_smoothing"] == 0.1 and stored["backbone"] == "fastnet"
    for index, row in enumerate(summary["rows"]):  # the table's numbers are the runs' own
        step = tmp_path / "study" / f"step{index}"
        metrics = json.loads((step / "metrics.json").read_text())
        assert (row["map_at_r"], row["eer"]) == (metrics["map_at_r"], metrics["eer"])
        tta = json.loads(next(step.glob("*/metrics.json")).read_text())
        assert tta["translate_test"] is True and row["tta_accuracy"] == tta["test_accuracy"]
    seconds = json.loads((tmp_path / "study" / "step1" / "epoch_seconds.json").read_text())
    assert summary["rows"][1]["fastest_epoch_seconds"] == min(seconds) > 0
    table = (tmp_path / "study" / "ablation.md").read_text()
    assert "with TTA (translate)" in table and "| MAP@R | EER |" in table and "fastest epoch (s)" in table


_LAYOUTS = r"""
import json, sys
import numpy as np, keras
from arcface_keras import backbones

options = dict(embedding_dim=8, widths=(4, 8, 8), whiten=2, activation="gelu", dirac=True, bn_scale=False, bn_momentum=0.6)
images = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
models = {layout: backbones.build("fastnet", (16, 16, 3), layout=layout, **options)
          for layout in ("channels_last", "channels_first")}
models["channels_first"].get_layer("whiten").adapt(images)
models["channels_last"].set_weights(models["channels_first"].get_weights())  # same weights, same shapes
out = {layout: {"training": keras.ops.convert_to_numpy(model(images, training=True)).tolist(),
                "inference": keras.ops.convert_to_numpy(model(images, training=False)).tolist()}
       for layout, model in models.items()}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_fastnet_channels_first_layout_computes_the_same_embedding(backend):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", _LAYOUTS], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for mode in ("training", "inference"):  # training: batch statistics, and the moving ones updated the same way
        last, first = np.array(out["channels_last"][mode]), np.array(out["channels_first"][mode])
        np.testing.assert_allclose(first, last, atol=1e-4, err_msg=mode)
        assert np.ptp(last, axis=0).max() > 1e-2  # not a constant embedding


def test_patch_whitening_channels_first_is_the_transposed_channels_last(rng):
    images = rng.normal(size=(3, 6, 5, 3)).astype("float32")
    last, first = whitening.PatchWhitening(2), whitening.PatchWhitening(2, data_format="channels_first")
    last.adapt(images)
    first.adapt(images)
    first.bias.assign(np.arange(24, dtype="float32"))
    last.bias.assign(np.arange(24, dtype="float32"))
    out = keras.ops.convert_to_numpy(first(np.transpose(images, (0, 3, 1, 2))))
    assert out.shape == (3, 24, 5, 4) == first.compute_output_shape((3, 3, 6, 5))
    np.testing.assert_allclose(out, np.transpose(keras.ops.convert_to_numpy(last(images)), (0, 3, 1, 2)), atol=1e-5)
    assert whitening.PatchWhitening.from_config(first.get_config()).data_format == "channels_first"
    with pytest.raises(ValueError, match="data_format"):
        whitening.PatchWhitening(2, data_format="nchw")
    with pytest.raises(ValueError, match="layout"):
        backbones.build("fastnet", (16, 16, 3), layout="nchw")
