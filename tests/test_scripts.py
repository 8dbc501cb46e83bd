import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args, timeout=600):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", name), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def test_train_default_run_on_a_tiny_budget(tmp_path):
    result = run_script("train.py", "--epochs", "2", "--train-samples", "300", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "digits" and metrics["loss"] == "arcface" and metrics["train_images"] == 300
    assert metrics["test_accuracy"] > 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/file.npz"], "does not exist"),
        (["--dataset", "no_such_set_xyz"], "Unknown data set"),
        (["--epochs", "0"], "epochs=0"),
        (["--train-samples", "999999"], "--train-samples"),
    ],
)
def test_train_bad_input_is_one_line(args, message, tmp_path):
    result = run_script("train.py", *args, "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_evaluate_recomputes_a_saved_run(tmp_path):
    folder = tmp_path / "run"
    assert run_script("train.py", "--epochs", "1", "--train-samples", "200", "--output", str(folder)).returncode == 0
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


def test_evaluate_rejects_a_folder_that_is_no_run(tmp_path):
    result = run_script("evaluate.py", str(tmp_path))
    assert result.returncode == 2 and "not a finished run folder" in result.stderr
