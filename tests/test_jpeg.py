import json

import numpy as np
import pytest

from arcface_keras.studies import jpeg, runner
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig


def test_round_trip_keeps_shape_and_loses_more_at_lower_quality(rng):
    colour = rng.integers(0, 256, size=(3, 16, 16, 3)).astype("uint8")
    gray = rng.integers(0, 256, size=(3, 16, 16)).astype("uint8")
    for images in (colour, gray):
        errors = [jpeg.mean_squared_error(images, jpeg.round_trip(images, q)) for q in (95, 50, 10)]
        assert jpeg.round_trip(images, 50).shape == images.shape and jpeg.round_trip(images, 50).dtype == np.uint8
        assert 0 < errors[0] < errors[1] < errors[2]


def test_psnr_and_its_inverse():
    assert jpeg.psnr(jpeg.mse_from_psnr(30.0)) == pytest.approx(30.0)
    assert jpeg.mse_from_psnr(30.0) == pytest.approx(255 ** 2 / 1000)
    assert jpeg.psnr(0.0) == float("inf")


def test_extrapolate_is_exact_on_a_line_and_needs_two_distortions():
    intercept, slope = jpeg.extrapolate([65.0, 100.0, 150.0], [0.9 - 0.001 * m for m in (65.0, 100.0, 150.0)])
    assert intercept == pytest.approx(0.9) and slope == pytest.approx(-0.001)
    with pytest.raises(ValueError, match="two or more distinct"):
        jpeg.extrapolate([65.0, 65.0], [0.9, 0.8])


def test_jpeg_cost_trains_each_copy_and_extrapolates(synthetic, tmp_path, monkeypatch):
    seen = []

    def fake_run(config):  # accuracy falls with the data's distortion
        seen.append(config)
        with np.load(config.data) as arrays:
            added = jpeg.mean_squared_error(np.load(synthetic)["x_train"], arrays["x_train"])
        return {"test_accuracy": 0.9 - 0.001 * added, "train_seconds": 60.0}

    monkeypatch.setattr(runner, "run_once", fake_run)
    base = TrainConfig(data=synthetic, epochs=2)
    summary = jpeg.jpeg_cost(base, str(tmp_path / "study"), qualities=(50, 20), base_psnr=30.0)
    added = [p["added_mse"] for p in summary["points"]]
    assert added[0] == 0 < added[1] < added[2]
    assert [c.output.rsplit("/", 1)[1] for c in seen] == ["qgiven", "q50", "q20"]
    assert seen[1].data.endswith("data-q50.npz") and seen[1].epochs == 2
    # The fake accuracy is linear in the distortion, so the line recovers it at none: 0.9 + 0.001 · MSE(30 dB).
    assert summary["accuracy_at_no_distortion"] == pytest.approx(0.9 + 0.001 * jpeg.mse_from_psnr(30.0))
    assert summary["estimated_cost"] == pytest.approx(0.001 * jpeg.mse_from_psnr(30.0))
    stored = json.loads((tmp_path / "study" / "jpeg_cost.json").read_text())
    assert stored["points"][2]["quality"] == 20
    assert "costs about" in (tmp_path / "study" / "jpeg_cost.md").read_text()
    with np.load(tmp_path / "study" / "data-q50.npz") as copy:
        np.testing.assert_array_equal(copy["y_test"], np.load(synthetic)["y_test"])


def test_jpeg_cost_refuses_other_data_and_qualities(synthetic, tmp_path):
    with pytest.raises(UserInputError, match="--data must be an .npz file"):
        jpeg.jpeg_cost(TrainConfig(data=None), str(tmp_path), 30.0)
    with pytest.raises(UserInputError, match=r"--qualities must be .* Received: qualities=\[0\]"):
        jpeg.jpeg_cost(TrainConfig(data=synthetic), str(tmp_path), 30.0, qualities=(0,))


def test_a_stale_copy_of_other_data_is_refused(synthetic, tmp_path, rng):
    path = str(tmp_path / "data-q50.npz")
    jpeg.degraded_copy(synthetic, 50, path)
    other = tmp_path / "other.npz"
    with np.load(synthetic) as arrays:
        np.savez(other, **{**arrays, "y_train": arrays["y_train"][::-1]})
    with pytest.raises(UserInputError, match="is a copy of other data than --data"):
        jpeg.degraded_copy(str(other), 50, path)
