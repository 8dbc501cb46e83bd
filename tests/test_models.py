import keras
import numpy as np
import pytest

from arcface_keras import models


@pytest.fixture
def pair():
    return models.build_models(4, (8, 8, 3), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), embedding_dim=8,
                               backbone_options={"widths": (4, 8)}, fixed_centers=False)


def test_horizontal_flip_mirrors_the_width_axis(rng):
    images = rng.integers(0, 256, size=(2, 5, 7, 3)).astype("float32")
    flipped = keras.ops.convert_to_numpy(models.HorizontalFlip()(images))
    np.testing.assert_array_equal(flipped, images[:, :, ::-1, :])


def test_flip_test_averages_the_two_embeddings_and_is_mirror_invariant(pair, rng):
    train_model, _ = pair
    images = rng.integers(0, 256, size=(6, 8, 8, 3)).astype("float32")
    flip = models.inference_model(train_model, flip_test=True)
    out = flip.predict(images, verbose=0)
    mirrored = flip.predict(images[:, :, ::-1, :], verbose=0)
    np.testing.assert_allclose(out["probabilities"], mirrored["probabilities"], atol=1e-5)
    # Reference: mean of the backbone's raw embeddings of the image and of its mirror, then unit norm.
    backbone, normalize = train_model.get_layer("backbone"), train_model.get_layer("normalize")
    raw = [keras.ops.convert_to_numpy(backbone(normalize(x), training=False)) for x in (images, images[:, :, ::-1, :])]
    mean = (raw[0] + raw[1]) / 2
    np.testing.assert_allclose(out["embedding"], mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    # Without the flip test, an asymmetric net gives different outputs for mirror images.
    plain = models.inference_model(train_model)
    assert not np.allclose(plain.predict(images, verbose=0)["embedding"], out["embedding"], atol=1e-4)
