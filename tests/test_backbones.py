import keras
import numpy as np
import pytest

from arcface_keras import backbones

SMALL = {
    "network": {"widths": (8, 16)},
    "resnet": {"depth": 8, "width": 4},
    "fastnet": {"widths": (8, 16, 16), "stem": 4},
}


@pytest.mark.parametrize("name", backbones.OWN_BACKBONES)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (8, 8, 3)])
def test_every_backbone_maps_images_to_embedding_dim(name, shape, rng):
    model = backbones.build(name, shape, embedding_dim=6, **SMALL[name])
    images = rng.normal(size=(5, *shape)).astype("float32")
    embedding = keras.ops.convert_to_numpy(model(images, training=False))
    assert embedding.shape == (5, 6)
    assert np.all(np.isfinite(embedding))
    # Different images give different embeddings (the net is not degenerate).
    assert np.ptp(embedding, axis=0).max() > 1e-3


@pytest.mark.parametrize("name", backbones.OWN_BACKBONES)
def test_embedding_is_batch_normalised_by_default(name, rng):
    model = backbones.build(name, (16, 16, 3), embedding_dim=8, **SMALL[name])
    assert model.layers[-1].name == "embedding_bn"
    images = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    embedding = keras.ops.convert_to_numpy(model(images, training=True))
    np.testing.assert_allclose(embedding.mean(axis=0), 0.0, atol=1e-4)


def test_fastnet_default_is_the_documented_layout():
    model = backbones.build("fastnet", (32, 32, 3), embedding_dim=128)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convs] == [24, 32, 32, 128, 128, 256, 256]
    assert model.get_layer("block3_b_conv").output.shape[1:3] == (4, 4)
    assert isinstance(model.get_layer("pool"), keras.layers.GlobalMaxPooling2D)


def test_fastnet_round_trips_through_keras_format(tmp_path, rng):
    model = backbones.build("fastnet", (16, 16, 3), embedding_dim=8, **SMALL["fastnet"])
    images = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    path = str(tmp_path / "fastnet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
        atol=1e-6,
    )


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match=r"backbone.*fastnet.*Received: backbone='vgg'"):
        backbones.build("vgg", (32, 32, 3))


@pytest.mark.parametrize("embedding_dim", [1, 2.5, "8"])
def test_bad_embedding_dim_is_named(embedding_dim):
    with pytest.raises(ValueError, match="embedding_dim"):
        backbones.build("fastnet", (32, 32, 3), embedding_dim=embedding_dim)


def test_bad_resnet_depth_is_named():
    with pytest.raises(ValueError, match="Received: depth=21"):
        backbones.build("resnet", (32, 32, 3), depth=21)


def test_fastnet_without_projection_embeds_the_pooled_features(rng):
    model = backbones.build("fastnet", (16, 16, 3), embedding_dim=16, projection=False, **SMALL["fastnet"])
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    assert model.layers[-1].name == "embedding_bn" and model.layers[-2].name == "pool"
    images = rng.normal(size=(4, 16, 16, 3)).astype("float32")
    assert keras.ops.convert_to_numpy(model(images, training=False)).shape == (4, 16)
    with pytest.raises(ValueError, match=r"projection.*last width \(16\).*Received: embedding_dim=8"):
        backbones.build("fastnet", (16, 16, 3), embedding_dim=8, projection=False, **SMALL["fastnet"])
