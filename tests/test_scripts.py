import contextlib
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest
from conftest import load_script


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_script(name, *args):
    """Run a script's main() in this process (no interpreter start-up per call)."""
    module = load_script(name.removesuffix(".py"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main(list(args)) or 0
        except SystemExit as exit_info:
            code = exit_info.code
    return Result(code, out.getvalue(), err.getvalue())


def test_train_default_run_on_a_tiny_budget(tmp_path):
    result = run_script("train.py", "--epochs", "2", "--train-samples", "300", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "digits" and metrics["loss"] == "arcface" and metrics["train_images"] == 300
    assert metrics["test_accuracy"] > 0.5


def test_evaluate_recomputes_a_saved_run(tmp_path, finished_run):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    before = json.loads((folder / "metrics.json").read_text())
    for key in ("precision_at_1", "r_precision", "map_at_r", "roc_auc", "eer", "tar_at_far_1e-3", "macro_f1", "angles"):
        assert key in before, key
    (folder / "report.md").unlink()
    result = run_script("evaluate.py", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads((folder / "metrics.json").read_text())
    assert after["test_accuracy"] == before["test_accuracy"] and after["map_at_r"] == before["map_at_r"]
    assert after["train_seconds"] == before["train_seconds"]
    report = (folder / "report.md").read_text()
    assert "MAP@R" in report
    for figure in ("embeddings.png", "confusion_matrix.png", "target_angles.png", "roc.png", "training_curves.png"):
        assert figure in report and (folder / figure).stat().st_size > 0
    # The flip test goes to its own folder and leaves the run's numbers alone.
    result = run_script("evaluate.py", str(folder), "--flip-test")
    assert result.returncode == 0, result.stderr[-3000:]
    flipped = json.loads((folder / "flip_test" / "metrics.json").read_text())
    assert flipped["flip_test"] is True
    # against the saved model with the flip test, computed here on the run's test split
    import dataclasses

    import keras

    from arcface_keras.toolkit import models, training

    fields = {field.name for field in dataclasses.fields(training.TrainConfig)}
    splits = training.load_data(training.TrainConfig(**{k: v for k, v in after["config"].items() if k in fields}))
    mirrored = models.inference_model(keras.models.load_model(folder / "model.keras"), flip_test=True)
    probabilities = models.predict(mirrored, splits.x_test)["probabilities"]
    assert flipped["test_accuracy"] == pytest.approx(float((probabilities.argmax(axis=1) == splits.y_test).mean()))
    assert json.loads((folder / "metrics.json").read_text()) == after
    result = run_script("evaluate.py", str(folder), "--flip-test", "--translate-test")
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.join(str(folder), "tta", "report.md") in result.stdout
    shifted = json.loads((folder / "tta" / "metrics.json").read_text())
    assert shifted["translate_test"] is True and shifted["flip_test"] is True
    assert json.loads((folder / "metrics.json").read_text()) == after


def test_evaluate_rejects_a_folder_that_is_no_run(tmp_path):
    result = run_script("evaluate.py", str(tmp_path))
    assert result.returncode == 2 and "not a finished run folder" in result.stderr


TINY_STUDY = ["--epochs", "1", "--train-samples", "200", "--backbone-options", '{"widths": [8, 16]}', "--embedding-dim", "16"]


@pytest.mark.slow
def test_compare_runs_end_to_end(tmp_path):
    result = run_script("compare.py", *TINY_STUDY, "--losses", "arcface", "softmax", "triplet", "--seeds", "2",
                        "--folder", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "compare-digits.json").read_text())
    assert set(summary["results"]) == {"arcface", "softmax", "triplet"}
    assert len(summary["results"]["arcface"]["test_accuracy"]["values"]) == 2
    assert (tmp_path / "compare-digits.png").stat().st_size > 0 and "± " in (tmp_path / "compare-digits.md").read_text()


@pytest.mark.slow
def test_partial_fc_study_on_a_synthetic_many_class_set(tmp_path):
    result = run_script("partial_fc.py", "--epochs", "2", "--backbone-options", '{"widths": [8, 16]}',
                        "--embedding-dim", "16", "--num-classes", "40", "--train-per-class", "4", "--seeds", "1",
                        "--rates", "1.0", "0.25", "--batch-size", "20", "--folder", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "partial-fc-synthetic40.json").read_text())
    assert set(summary["results"]) == {"1", "0.25"} and summary["classes"] == 40
    assert json.loads((tmp_path / "rate0.25-seed0" / "metrics.json").read_text())["config"]["sample_rate"] == 0.25


@pytest.mark.slow
def test_sweep_selects_on_validation_and_tests_once(tmp_path):
    result = run_script("sweep.py", *TINY_STUDY, "--scales", "8", "16", "--margins", "0.1", "0.3", "--folder", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "sweep-digits.json").read_text())
    grid = np.array(summary["val_accuracy"])
    assert grid.shape == (2, 2) and summary["best"]["val_accuracy"] == grid.max()
    tested = [p for p in tmp_path.iterdir() if (p / "report.md").exists()]
    assert len(tested) == 1  # only the best cell touched the test set
    assert (tmp_path / "sweep-digits.png").stat().st_size > 0


@pytest.mark.slow
def test_imbalance_runs_end_to_end(tmp_path):
    result = run_script("imbalance.py", *TINY_STUDY[:2], "--backbone-options", '{"widths": [8, 16]}',
                        "--embedding-dim", "16", "--ratios", "10", "--folder", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "imbalance-digits.json").read_text())
    assert [r["arm"] for r in summary["rows"]] == ["softmax", "arcface", "arcface-class-margins"]
    counts = summary["rows"][0]["train_class_counts"]
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.15)
    assert (tmp_path / "imbalance-digits-ratio10.png").stat().st_size > 0


@pytest.mark.slow
def test_default_run_reaches_high_accuracy(tmp_path):
    """The README's main command, full default budget (about a minute)."""
    result = run_script("train.py", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_convergence_study_runs_end_to_end(tmp_path):
    result = run_script("convergence.py", *TINY_STUDY, "--only", "0", "4", "--folder", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "convergence.json").read_text())
    assert [r["variant"] for r in summary["rows"]][1] == "recipe, learned centers"
    import keras

    import arcface_keras  # noqa: F401  (the layers, for load_model)

    for row, folder in zip(summary["rows"], ("variant00", "variant04")):  # against the saved heads' kernels
        kernel = keras.ops.convert_to_numpy(keras.models.load_model(tmp_path / folder / "model.keras")
                                            .get_layer("head").kernel).astype("float64")
        unit = kernel / np.linalg.norm(kernel, axis=0)
        cosines = (unit.T @ unit)[~np.eye(unit.shape[1], dtype=bool)]
        assert row["center_cosine"]["mean"] == pytest.approx(cosines.mean(), abs=1e-9)
        assert row["center_cosine"]["max"] == pytest.approx(cosines.max(), abs=1e-9)
    assert (tmp_path / "variant00").is_dir() and (tmp_path / "variant04").is_dir()


def test_embedding_spread_reports_each_backbone():
    result = run_script("embedding_spread.py", "--images", "40", "--seeds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| network") or line.startswith("| resnet")]
    assert len(rows) == 4
    with_bn = [float(line.split("|")[3]) for line in rows if "| yes |" in line]
    assert all(abs(value) < 0.2 for value in with_bn)  # batch norm centers the embeddings


def test_jpeg_pack_round_trips_an_image_npz(tmp_path):
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(32), np.arange(32))[None, :, :, None] * 3  # smooth images: JPEG's easy case
    smooth = (ramp + rng.integers(0, 60, size=(10, 1, 1, 3))).astype("uint8")
    np.savez(tmp_path / "in.npz", x_train=smooth[:7], y_train=np.arange(7, dtype="uint8"), x_test=smooth[7:],
             y_test=np.arange(3, dtype="uint8"))
    assert run_script("jpeg_pack.py", "pack", str(tmp_path / "in.npz"), str(tmp_path / "packed.npz")).returncode == 0
    assert run_script("jpeg_pack.py", "unpack", str(tmp_path / "packed.npz"), str(tmp_path / "out.npz")).returncode == 0
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["y_train"], np.arange(7))
    assert out["x_train"].shape == (7, 32, 32, 3) and out["x_test"].shape == (3, 32, 32, 3)
    error = np.abs(out["x_train"].astype(int) - smooth[:7]).mean()
    assert 0 < error < 2, error  # JPEG at quality 75: close, not exact


def test_benchmark_head_times_the_task_path(tmp_path):
    module = load_script("benchmark_head")
    rows = module.benchmark([10], 1, names=("dense", "arcface_task"))
    assert set(rows[0]["seconds"]) == {"dense", "arcface_task"} and rows[0]["ratio_to_dense"]["dense"] == 1.0


def test_benchmark_head_baseline_is_a_bias_free_dense_head():
    # the ratios are stated against a bias-free Dense head (as benchmark_head_backends.py builds it)
    head = load_script("benchmark_head").dense_head(7)
    assert isinstance(head, keras.layers.Dense) and not head.use_bias and head.units == 7


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_benchmark_head_backends_runs_on_jax_and_torch(backend, tmp_path):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "benchmark_head_backends.py")
    done = subprocess.run([sys.executable, script, "--classes", "10", "--rounds", "1", "--output", str(tmp_path / "h")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "h.json").read_text())
    assert record["meta"]["backend"] == backend and record["rows"][0]["classes"] == 10
    assert record["rows"][0]["seconds"]["arcface_keras"] > 0


def test_cifar10_vs_airbench_torch_recipe_is_the_recipe_on_pytorch_channels_first():
    import json

    script = load_script("cifar10_vs_airbench")
    assert script.recipe("tensorflow") == script.RECIPE
    torch = script.recipe("torch")
    assert torch[-2:] == ["--backend", "torch"] and len(torch) == len(script.RECIPE) + 2
    index = script.RECIPE.index("--backbone-options") + 1
    options, plain = json.loads(torch[index]), json.loads(script.RECIPE[index])
    assert options == {**plain, "layout": "channels_first"}
    assert [a for i, a in enumerate(torch[:-2]) if i != index] == [a for i, a in enumerate(script.RECIPE) if i != index]
