"""Deployable exports against the Keras model on the same images."""

import sys

import keras
import numpy as np
import pytest

import arcface_keras  # noqa: F401  (registers the layers)
from arcface_keras.toolkit import deploy, export, models
from arcface_keras.errors import UserInputError


@pytest.fixture(scope="module")
def keras_outputs(finished_run):
    model = models.inference_model(keras.models.load_model(finished_run / "model.keras"))
    images = np.random.default_rng(0).integers(0, 256, size=(16, 12, 12, 1)).astype("float32")
    return images, model.predict(images, verbose=0)


def test_litert_float32_matches_the_keras_model(finished_run, keras_outputs):
    images, expected = keras_outputs
    run = export.litert_runner(export.export_litert(str(finished_run)))
    out = run(images)
    assert np.abs(out["embedding"] - expected["embedding"]).max() <= 1e-4
    np.testing.assert_array_equal(out["class_id"], expected["probabilities"].argmax(axis=1))


def test_litert_int8_and_embedding_only(finished_run, keras_outputs):
    images, expected = keras_outputs
    out = export.litert_runner(export.export_litert(str(finished_run), quantize=True))(images)
    cosines = np.sum(out["embedding"] * expected["embedding"], axis=1)
    assert cosines.min() >= 0.99
    only = export.litert_runner(export.export_litert(str(finished_run), embedding_only=True))(images)
    assert set(only) == {"embedding"} and np.abs(only["embedding"] - expected["embedding"]).max() <= 1e-4


def test_onnx_matches_the_keras_model(finished_run, keras_outputs):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    images, expected = keras_outputs
    out = export.onnx_runner(export.export_onnx(str(finished_run)))(images)
    assert set(out) == {"embedding", "probabilities", "class_id", "class_name"}
    assert np.abs(out["embedding"] - expected["embedding"]).max() <= 1e-4
    np.testing.assert_allclose(out["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(out["class_id"], expected["probabilities"].argmax(axis=1))


def test_onnx_without_its_converter_is_one_clear_refusal(finished_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    monkeypatch.setitem(sys.modules, "tf2onnx.convert", None)
    with pytest.raises(UserInputError, match="needs the optional converter tf2onnx"):
        deploy.export_and_check(str(finished_run), "onnx")


def test_export_report_and_refusals(finished_run):
    report = deploy.export_and_check(str(finished_run), "litert", images=8)
    assert report["embedding_max_abs_difference"] <= 1e-4 and report["bytes"] > 0 and report["ms_per_image"] > 0
    assert report["class_id_agreement"] == 1.0
    with pytest.raises(UserInputError, match="apply to --format litert"):
        deploy.export_and_check(str(finished_run), "saved_model", quantize=True)
