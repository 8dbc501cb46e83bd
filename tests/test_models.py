import keras
import numpy as np
import pytest

from arcface_keras import tta
from arcface_keras.toolkit import models


@pytest.fixture
def pair():
    return models.build_models(4, (8, 8, 3), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), embedding_dim=8,
                               backbone_options={"widths": (4, 8)}, fixed_centers=False)


def test_horizontal_flip_mirrors_the_width_axis(rng):
    images = rng.integers(0, 256, size=(2, 5, 7, 3)).astype("float32")
    flipped = keras.ops.convert_to_numpy(tta.HorizontalFlip()(images))
    np.testing.assert_array_equal(flipped, images[:, :, ::-1, :])


def test_flip_test_averages_the_two_embeddings_and_is_mirror_invariant(pair, rng):
    train_model, _ = pair
    images = rng.integers(0, 256, size=(6, 8, 8, 3)).astype("float32")
    flip = models.inference_model(train_model, flip_test=True)
    out = flip.predict(images, verbose=0)
    mirrored = flip.predict(images[:, :, ::-1, :], verbose=0)
    np.testing.assert_allclose(out["probabilities"], mirrored["probabilities"], atol=1e-5)
    # Reference: mean of the backbone's raw embeddings of the image and of its mirror, then unit norm.
    normalize, backbone, _ = models.parts(train_model)
    raw = [keras.ops.convert_to_numpy(backbone(normalize(x), training=False)) for x in (images, images[:, :, ::-1, :])]
    mean = (raw[0] + raw[1]) / 2
    np.testing.assert_allclose(out["embedding"], mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    # Without the flip test, an asymmetric net gives different outputs for mirror images.
    plain = models.inference_model(train_model)
    assert not np.allclose(plain.predict(images, verbose=0)["embedding"], out["embedding"], atol=1e-4)


def test_a_run_folders_two_input_model_from_before_the_task_still_serves(pair, tmp_path, rng):
    # Run folders made before ArcFaceClassifier hold a functional model of [images, labels] with the layers
    # "normalize", "backbone" and "head": it must still load and give the same inference model.
    task, _ = pair
    assert isinstance(task, models.ArcFaceClassifier)
    normalize, backbone, head = models.parts(task)
    images, labels = keras.Input((8, 8, 3), name="image"), keras.Input((), dtype="int32", name="label")
    legacy = keras.Model([images, labels], head([backbone(normalize(images)), labels]), name="arcface")
    legacy.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    pixels = rng.integers(0, 256, size=(5, 8, 8, 3)).astype("float32")
    old = models.inference_model(loaded).predict(pixels, verbose=0)
    new = models.inference_model(task).predict(pixels, verbose=0)
    for key in ("embedding", "probabilities"):
        np.testing.assert_allclose(old[key], new[key], atol=1e-6)
    np.testing.assert_array_equal(models.class_centers(loaded), models.class_centers(task))
