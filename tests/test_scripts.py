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
