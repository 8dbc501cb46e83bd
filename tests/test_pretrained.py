"""Pretrained keras.applications backbones: preprocessing inside, grayscale to
RGB, saved weights, offline refusal, freezing and the backbone learning rate."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import synthetic_npz

from arcface_keras.toolkit import models
from arcface_keras import pretrained
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig, train


def _application_weights(train_model):
    return [np.array(v) for v in pretrained.pretrained_variables(models.parts(train_model)[1])]


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet50_v2"])
def test_application_backbone_takes_raw_grayscale_pixels(name):
    train_model, inference = models.build_models(3, (32, 32, 1), (0.5,), (0.25,), backbone=name, weights="none",
                                                 embedding_dim=16)
    backbone = models.parts(train_model)[1]
    kinds = [type(layer).__name__ for layer in backbone.layers]
    assert kinds[1] == "GrayscaleToRGB" and ("Rescaling" in kinds) == (name == "resnet50_v2")
    application = [layer for layer in backbone.layers if isinstance(layer, keras.Model)][0]
    norms = [layer for layer in application.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.momentum == 0.9 and layer.trainable for layer in norms)  # from scratch: not the apps' 0.999
    normalize = models.parts(train_model)[0]
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(np.array(normalize(images)), images, rtol=1e-6)  # raw pixels reach the backbone
    out = inference.predict(images, verbose=0)
    assert out["embedding"].shape == (2, 16) and np.isfinite(out["probabilities"]).all()


def test_saved_weights_load_into_the_backbone(tmp_path):
    source = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "small.weights.h5")
    source.save_weights(path)
    train_model, _ = models.build_models(3, (32, 32, 3), (0.5,) * 3, (0.25,) * 3, backbone="mobilenet_v3_small",
                                         weights=path, embedding_dim=16)
    for loaded, saved in zip(_application_weights(train_model), [np.array(v) for v in source.variables]):
        np.testing.assert_array_equal(loaded, saved)
    application = [layer for layer in models.parts(train_model)[1].layers if isinstance(layer, keras.Model)][0]
    assert not any(layer.trainable for layer in application.layers
                   if isinstance(layer, keras.layers.BatchNormalization))  # pretrained: inference mode
    (tmp_path / "wrong.weights.h5").write_bytes(b"not h5")
    with pytest.raises(UserInputError, match="does not load into MobileNetV3Small"):
        models.build_models(3, (32, 32, 3), (0.5,) * 3, (0.25,) * 3, backbone="mobilenet_v3_small",
                            weights=str(tmp_path / "wrong.weights.h5"))


def test_imagenet_weights_offline_fail_fast_with_a_hint(monkeypatch):
    monkeypatch.setattr(pretrained, "_cached", lambda name: False)
    monkeypatch.setattr(pretrained, "_network_available", lambda: False)
    with pytest.raises(UserInputError, match=r"no network\. Pass --weights PATH .* or --weights none"):
        models.build_models(3, (32, 32, 3), (0.5,) * 3, (0.25,) * 3, backbone="convnext_tiny")


def test_gradient_scale_is_identity_forward_and_scales_the_gradient():
    layer = pretrained.GradientScale()
    x = tf.constant([[1.0, -2.0]])
    layer.build(x.shape)
    layer.factor.assign(0.1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(3.0 * y)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), [[0.3, 0.3]], rtol=1e-6)


@pytest.mark.slow
def test_frozen_epochs_leave_the_pretrained_part_untouched(tmp_path, rng, monkeypatch):
    data = synthetic_npz(tmp_path / "data.npz", rng, size=32)
    source = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "small.weights.h5")
    source.save_weights(path)
    initial = [np.array(v) for v in source.variables]
    seen = {}
    original = pretrained.BackboneSchedule.on_epoch_end if hasattr(pretrained.BackboneSchedule, "on_epoch_end") else None

    def record(self, epoch, logs=None):
        seen[epoch] = [np.array(v) for v in pretrained.pretrained_variables(models.parts(self.model)[1])]
        if original:
            original(self, epoch, logs)

    monkeypatch.setattr(pretrained.BackboneSchedule, "on_epoch_end", record, raising=False)
    metrics = train(TrainConfig(data=data, backbone="mobilenet_v3_small", weights=path, freeze_backbone_epochs=1,
                                backbone_lr_factor=0.5, epochs=2, batch_size=20, embedding_dim=16, verbose=0,
                                output=str(tmp_path / "run")))
    assert all(np.array_equal(a, b) for a, b in zip(seen[0], initial))  # frozen: not trained, not decayed, BN stats kept
    assert not all(np.array_equal(a, b) for a, b in zip(seen[1], initial))  # unfrozen in epoch 2
    assert metrics["config"]["freeze_backbone_epochs"] == 1


def test_any_keras_model_is_a_backbone():
    features = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3)])
    train_model, inference = models.build_models(3, (12, 12, 1), (0.5,), (0.25,), backbone=features, embedding_dim=8)
    out = inference.predict(np.zeros((2, 12, 12, 1), "float32"), verbose=0)
    assert out["embedding"].shape == (2, 8)


def test_pretrained_flags_are_refused_for_backbones_trained_from_scratch():
    with pytest.raises(UserInputError, match="--weights applies to pretrained backbones"):
        TrainConfig(weights="imagenet").validate()
    with pytest.raises(UserInputError, match="--freeze-backbone-epochs applies"):
        TrainConfig(freeze_backbone_epochs=2).validate()
