"""Every entry point meets bad input with one line on stderr, exit status 2,
no traceback, nothing written and nothing overwritten; every accepted flag acts."""

import argparse
import dataclasses
import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, load_script, snapshot

from arcface_keras.toolkit import cli
from arcface_keras.toolkit.training import TrainConfig


class _Malicious:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, finished_run):
    """Bad files of every kind, and a finished run to aim at (with --overwrite)."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    labels = np.arange(40) % 4
    good = dict(x_train=images, y_train=labels, x_test=images[:8], y_test=labels[:8])
    _npz(root / "good.npz", **good)
    big = rng.integers(0, 256, size=(8, 32, 32), dtype=np.uint8)
    _npz(root / "good32.npz", x_train=big, y_train=np.arange(8) % 2, x_test=big[:2], y_test=np.arange(2))
    (root / "empty.npz").write_bytes(b"")
    (root / "truncated.npz").write_bytes((root / "good.npz").read_bytes()[:300])
    _npz(root / "pickle.npz", **{**good, "x_train": np.array([{"a": 1}] * 40, dtype=object)})
    _npz(root / "nokeys.npz", x_train=images, y_train=labels, x_test=images[:8])
    _npz(root / "float.npz", **{**good, "x_train": images.astype("float32")})
    _npz(root / "oneclass.npz", **{**good, "y_train": np.zeros(40, dtype=int)})
    _npz(root / "mismatch.npz", **{**good, "y_train": labels[:30]})
    _npz(root / "unseen.npz", **{**good, "y_test": np.full(8, 7)})
    _npz(root / "gapped.npz", **{**good, "y_train": (labels > 1) * 2})
    _npz(root / "noimages.npz", **{**good, "x_train": images[:0], "y_train": labels[:0]})
    _npz(root / "shapes.npz", **{**good, "x_test": rng.integers(0, 256, size=(8, 10, 10), dtype=np.uint8)})
    _npz(root / "rank.npz", **{**good, "x_train": images.reshape(40, 64)})
    _npz(root / "negative.npz", **{**good, "y_train": labels - 1})
    _npz(root / "floatlabels.npz", **{**good, "y_train": labels.astype("float32")})
    _npz(root / "channels.npz", **{**good, "x_train": rng.integers(0, 256, size=(40, 8, 8, 2), dtype=np.uint8),
                                   "x_test": rng.integers(0, 256, size=(8, 8, 8, 2), dtype=np.uint8)})
    (root / "notes.txt").write_text("not data")
    (root / "emptydir").mkdir()
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    for folder, content in (("idx_truncated", gzip.compress(b"\x00\x00\x08\x03" + bytes(100))[:20]),
                            ("idx_plain", b"\x00\x00\x08\x03" + bytes(100)),
                            ("idx_magic", gzip.compress(b"\x12\x34\x56\x78" + bytes(100))),
                            ("idx_header", gzip.compress(b"\x00\x00\x08\x03\x00"))):
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).write_bytes(content)
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for folder, content in (("cifar_malicious", pickle.dumps({"data": _Malicious(), "labels": [0]})),
                            ("cifar_garbage", b"garbage")):
        (root / folder).mkdir()
        for name in batches:
            (root / folder / name).write_bytes(content)
    (root / "a_file").write_text("x")
    (root / "foreign").mkdir()
    (root / "foreign" / "holiday.jpg").write_text("x")
    for name in ("cat", "dog"):
        (root / "broken_images" / name).mkdir(parents=True)
        (root / "broken_images" / name / "x.png").write_bytes(b"not a png")
        (root / "mixed_sizes" / name).mkdir(parents=True)
    from PIL import Image

    Image.new("L", (8, 8)).save(root / "mixed_sizes" / "cat" / "a.png")
    Image.new("L", (9, 7)).save(root / "mixed_sizes" / "dog" / "b.png")
    shutil.copytree(finished_run, root / "finished")
    shutil.copytree(finished_run, root / "no_model")
    os.remove(root / "no_model" / "model.keras")
    shutil.copytree(finished_run, root / "bad_model")
    (root / "bad_model" / "model.keras").write_text("not a model")
    shutil.copytree(finished_run, root / "bad_metrics")
    (root / "bad_metrics" / "metrics.json").write_text("{not json")
    shutil.copytree(finished_run, root / "lost_data")
    metrics = json.loads((root / "lost_data" / "metrics.json").read_text())
    metrics["config"]["data"] = str(root / "gone.npz")
    (root / "lost_data" / "metrics.json").write_text(json.dumps(metrics))
    return root


TRAIN = "train"
AT_FINISHED = ["--output", "{root}/finished", "--overwrite"]
CASES = [
    # (script, arguments, what the one line must say)
    (TRAIN, ["--data", "{root}/missing.npz"], "does not exist"),
    (TRAIN, ["--sample-rate", "0"], "--sample-rate must be in (0, 1]"),
    (TRAIN, ["--sample-rate", "0.5", "--loss", "softmax"], "--sample-rate (Partial FC) needs a margin head"),
    (TRAIN, ["--strategy", "multiworker"], "--strategy multiworker needs the cluster in TF_CONFIG"),
    (TRAIN, ["--data", "{root}/empty.npz"], "not a readable .npz"),
    (TRAIN, ["--data", "{root}/truncated.npz"], "not a readable .npz"),
    (TRAIN, ["--data", "{root}/pickle.npz"], "not a readable .npz"),
    (TRAIN, ["--data", "{root}/nokeys.npz"], "lacks ['y_test']"),
    (TRAIN, ["--data", "{root}/float.npz"], "x_train must be uint8"),
    (TRAIN, ["--data", "{root}/oneclass.npz"], "at least 2"),
    (TRAIN, ["--data", "{root}/mismatch.npz"], "30 labels in y_train for 40 images"),
    (TRAIN, ["--data", "{root}/unseen.npz"], "y_test has classes that y_train lacks: [7]"),
    (TRAIN, ["--data", "{root}/gapped.npz"], "no image of classes [1]"),
    (TRAIN, ["--data", "{root}/noimages.npz"], "holds no images"),
    (TRAIN, ["--data", "{root}/shapes.npz"], "differ in shape"),
    (TRAIN, ["--data", "{root}/rank.npz"], "must have shape (N, H, W)"),
    (TRAIN, ["--data", "{root}/negative.npz"], "negative labels"),
    (TRAIN, ["--data", "{root}/floatlabels.npz"], "integer class ids"),
    (TRAIN, ["--data", "{root}/channels.npz"], "1 or 3 channels"),
    (TRAIN, ["--data", "{root}/notes.txt"], "not an .npz"),
    (TRAIN, ["--data", "{root}/emptydir"], "neither the four MNIST idx files"),
    (TRAIN, ["--data", "{root}/idx_truncated"], "not a complete gzip"),
    (TRAIN, ["--data", "{root}/idx_plain"], "not a complete gzip"),
    (TRAIN, ["--data", "{root}/idx_magic"], "bad magic number"),
    (TRAIN, ["--data", "{root}/idx_header"], "truncated inside its idx header"),
    (TRAIN, ["--data", "{root}/cifar_malicious"], "refusing to load posix.system"),
    (TRAIN, ["--data", "{root}/cifar_garbage"], "not a CIFAR-10 python batch"),
    (TRAIN, ["--dataset", "no_such_set_xyz"], "Unknown data set"),
    (TRAIN, ["--epochs", "0"], "--epochs must be an integer ≥ 1. Received: epochs=0"),
    (TRAIN, ["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (TRAIN, ["--batch-size", "-5"], "batch_size=-5"),
    (TRAIN, ["--lr", "nan"], "lr=nan"),
    (TRAIN, ["--lr", "-1"], "lr=-1.0"),
    (TRAIN, ["--lr", "inf"], "lr=inf"),
    (TRAIN, ["--scale", "0"], "scale=0.0"),
    (TRAIN, ["--scale", "nan"], "argument --scale: must be finite"),
    (TRAIN, ["--margin", "4"], "--margin must be in [0, 3.14159) for loss arcface"),
    (TRAIN, ["--loss", "sphereface", "--margin", "0.5"], "for loss sphereface"),
    (TRAIN, ["--momentum", "1.5"], "momentum=1.5"),
    (TRAIN, ["--weight-decay", "-1"], "weight_decay=-1.0"),
    (TRAIN, ["--validation-fraction", "1"], "validation_fraction=1.0"),
    (TRAIN, ["--train-samples", "0"], "train_samples=0"),
    (TRAIN, ["--train-samples", "999999"], "--train-samples must lie in"),
    (TRAIN, ["--imbalance-ratio", "0.5"], "imbalance_ratio=0.5"),
    (TRAIN, ["--embedding-dim", "1"], "embedding_dim=1"),
    (TRAIN, ["--sub-centers", "0"], "sub_centers=0"),
    (TRAIN, ["--seed", "-1"], "seed=-1"),
    (TRAIN, ["--margin-warmup-epochs", "-2"], "margin_warmup_epochs=-2.0"),
    (TRAIN, ["--lookahead-steps", "5"], "--lookahead-steps must be an integer ≥ 0, and > 0 only with --ema-momentum"),
    (TRAIN, ["--alternating-flip", "--augment", "shift"], "--alternating-flip must be True only with --augment one of"),
    (TRAIN, ["--pad-mode", "wrap"], "argument --pad-mode: invalid choice: 'wrap'"),
    (TRAIN, ["--lr-schedule", "step"], "argument --lr-schedule: invalid choice: 'step'"),
    (TRAIN, ["--lr-schedule", "triangle", "--lr-warmup-epochs", "3"],
     "--lr-warmup-epochs must be a number ≥ 0, and 1.0 (unused) with --lr-schedule triangle"),
    (TRAIN, ["--backbone-options", "{bad"], "must be a JSON object"),
    (TRAIN, ["--backbone-options", "[1, 2]"], "must be a JSON object, not list"),
    (TRAIN, ["--backbone-options", '{"depth": 3}'], "does not take: ['depth']"),
    (TRAIN, ["--backbone-options", '{"widths": "abc"}'], "cannot build the network model"),
    (TRAIN, ["--loss", "hinge"], "argument --loss: invalid choice: 'hinge'"),
    (TRAIN, ["--fixed-centers", "--embedding-dim", "4"], "--fixed-centers needs --embedding-dim ≥ classes × sub-centers = 10"),
    (TRAIN, ["--per-class-margins", "--loss", "softmax"], "--per-class-margins needs loss arcface or cosface"),
    (TRAIN, ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (TRAIN, ["--output", "{root}/a_file"], "is a file, not a folder"),
    (TRAIN, ["--output", "{root}/foreign", "--overwrite"], "holds no run"),
    (TRAIN, ["--output", "{root}/finished"], "holds a finished run; pass --overwrite"),
    (TRAIN, ["--data", "{root}/broken_images"], "holds no readable image (2 files failed to decode)"),
    (TRAIN, ["--data", "{root}/mixed_sizes"], "images differ in size (7×9, 8×8, …); pass --image-size H W"),
    (TRAIN, ["--data", "{root}/mixed_sizes", "--image-size", "0", "8"], "--image-size must be two integers ≥ 1"),
    (TRAIN, ["--image-size", "8"], "argument --image-size: expected 2 arguments"),
    (TRAIN, ["--color-mode", "sepia"], "argument --color-mode: invalid choice"),
    (TRAIN, ["--image-size", "16", "16"], "--image-size applies to image folders; digits is held in memory"),
    (TRAIN, ["--cache", "memory"], "--cache applies to image folders"),
    (TRAIN, ["--weights", "imagenet"], "--weights applies to pretrained backbones"),
    (TRAIN, ["--backbone", "mobilenet_v3_small", "--weights", "{root}/missing.weights.h5"], "no such file"),
    (TRAIN, ["--backbone", "mobilenet_v3_small", "--weights", "{root}/notes.txt", "--data", "{root}/good32.npz"],
     "does not load into MobileNetV3Small"),
    (TRAIN, ["--backbone", "mobilenet_v3_small", "--weights", "none"], "Input size must be at least 32x32"),
    (TRAIN, ["--backbone", "mobilenet_v3_small", "--freeze-backbone-epochs", "-1"], "freeze_backbone_epochs=-1"),
    (TRAIN, ["--backbone", "resnet50_v2", "--backbone-lr-factor", "nan"], "backbone_lr_factor=nan"),
    ("enrol", ["{root}/missing_run", "--data", "{root}/mixed_sizes", "--output", "{root}/g.npz"], "has no exported model"),
    ("enrol", ["{root}/finished", "--data", "{root}/missing", "--output", "{root}/g.npz"], "does not exist"),
    ("enrol", ["{root}/finished", "--data", "{root}/mixed_sizes", "--output", "{root}/foreign"], "is a folder"),
    ("enrol", ["{root}/finished", "--data", "{root}/mixed_sizes", "--output", "{root}/notes.txt"], "exists; pass --append"),
    ("enrol", ["{root}/finished", "--data", "{root}/mixed_sizes", "--output", "{root}/none.npz", "--append"],
     "no gallery at"),
    ("enrol", ["{root}/finished", "--data", "{root}/mixed_sizes", "--output", "{root}/notes.txt", "--append"],
     "is not a gallery store"),
    ("enrol", ["{root}/finished", "--output", "{root}/g.npz"], "give --data (enrol class subfolders) or --convert"),
    ("identify", ["{root}/finished", "--gallery", "{root}/notes.txt", "--data", "{root}/mixed_sizes", "--output",
                  "{root}/p.csv"], "is not a gallery store"),
    ("serve", ["{root}/finished", "--gallery", "{root}/g.npz"], "the service writes a store"),
    ("serve", ["{root}/finished", "--gallery", "{root}/notes.txt", "--port", "0"], "--port: must lie in 1"),
    ("identify", ["{root}/finished", "--gallery", "{root}/g.npz", "--data", "{root}/mixed_sizes", "--output",
                  "{root}/p.csv", "--top-k", "0"], "--top-k must be ≥ 1"),
    ("identify", ["{root}/no_model", "--gallery", "{root}/g.npz", "--data", "{root}/mixed_sizes", "--output",
                  "{root}/p.csv", "--threshold", "2"], "--threshold must be a cosine in [-1, 1]"),
    ("identify", ["{root}/no_model", "--gallery", "{root}/g.npz", "--data", "{root}/mixed_sizes", "--output",
                  "{root}/p.csv", "--far", "0.5"], "--far must be one of the run's calibrated rates"),
    ("verify", ["{root}/finished", "{root}/mixed_sizes/cat/a.png"], "give two images"),
    ("verify", ["{root}/finished", "{root}/missing.png", "{root}/mixed_sizes/cat/a.png"], "does not exist"),
    ("verify", ["{root}/finished", "--pairs", "{root}/notes.txt", "--root", "{root}"], "line 1: expected"),
    ("export", ["{root}/missing_run"], "is not a finished run folder with an export"),
    ("export", ["{root}/finished", "--format", "onnx", "--quantize"], "apply to --format litert"),
    ("export", ["{root}/finished", "--images", "0"], "--images: must be ≥ 1"),
    ("export", ["{root}/finished", "--format", "tflite"], "argument --format: invalid choice"),
    ("evaluate", ["{root}/missing_run"], "does not exist"),
    ("evaluate", ["{root}/no_model"], "model.keras is missing"),
    ("evaluate", ["{root}/bad_model"], "is not a readable Keras model"),
    ("evaluate", ["{root}/bad_metrics"], "is not a run's metrics file"),
    ("evaluate", ["{root}/lost_data"], "gone.npz' does not exist"),
    ("compare", ["--output", "{root}/x"], "unrecognized arguments: --output"),
    ("compare", ["--seeds", "0"], "--seeds: must be ≥ 1"),
    ("compare", ["--folder", "{root}/a_file"], "--folder"),
    ("compare", ["--epochs", "0"], "epochs=0"),
    ("sweep", ["--scale", "8"], "unrecognized arguments: --scale"),
    ("sweep", ["--margins", "nan"], "margin=nan"),
    ("imbalance", ["--loss", "softmax"], "unrecognized arguments: --loss"),
    ("imbalance", ["--ratios", "0.5"], "imbalance_ratio=0.5"),
    ("convergence", ["--only", "99"], "--only: indices must lie in"),
    ("embedding_spread", ["--data", "{root}/missing.npz"], "does not exist"),
    (TRAIN, ["--classes", "x*"], "--classes ['x*'] matches 0 class(es)"),
    ("open_set", ["--train-classes", "[0-4]", "--enrol-classes", "[5-7]", "--impostor-classes", "[7-9]",
                  "--folder", "{root}/study"], "classes both enrolled and impostors"),
    ("open_set", ["--train-classes", "[0-4]", "--enrol-classes", "[5-7]"], "required: --impostor-classes"),
    ("partial_fc", ["--rates", "1.5", "--folder", "{root}/pfc"], "--rates: each must lie in (0, 1]"),
    ("partial_fc", ["--num-classes", "1", "--folder", "{root}/pfc"], "must be ≥ 2"),
    ("partial_fc", ["--optimizer", "adam", "--folder", "{root}/pfc"],
     "--sample-rate (Partial FC) updates only the sampled centers with SGD"),
    ("partial_fc", ["--folder", "{root}/notes.txt"], "is a file, not a folder"),
]


@pytest.mark.parametrize("script, arguments, expected", CASES, ids=[f"{s}:{' '.join(a)}" for s, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(script, arguments, expected, workspace, capsys):
    arguments = [a.replace("{root}", str(workspace)) for a in arguments]
    if script == TRAIN and "--output" not in arguments:
        arguments += [a.replace("{root}", str(workspace)) for a in AT_FINISHED]  # validated before the old run is replaced
    before = snapshot(workspace)
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(arguments)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert exit_info.value.code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert snapshot(workspace) == before  # nothing written, the finished run byte-identical


def test_bad_input_from_a_fresh_process_is_exactly_one_line(tmp_path):
    """The real stderr of the process, TensorFlow's own start-up lines included."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--data", str(tmp_path / "x.npz")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: --data {str(tmp_path / 'x.npz')!r} does not exist."]


def _parser(script):
    module = load_script(script)
    captured = {}
    original = cli.ArgumentParser.parse_args

    def capture(self, argv=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    cli.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            module.main([])
    finally:
        cli.ArgumentParser.parse_args = original
    return captured["parser"]


def _destinations(parser):
    return {action.dest for action in parser._actions if not isinstance(action, argparse._HelpAction)}


def test_every_config_field_is_a_train_flag():
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert fields <= _destinations(_parser("train"))


@pytest.mark.parametrize("script, set_by_the_study", [
    ("compare", {"loss", "seed", "output"}),
    ("sweep", {"scale", "margin", "evaluate_test", "output"}),
    ("imbalance", {"loss", "imbalance_ratio", "per_class_margins", "output"}),
    ("convergence", {"output"}),
    ("open_set", {"loss", "seed", "classes", "output"}),
    ("partial_fc", {"sample_rate", "seed", "output"}),
    ("ablation", {"batch_size", "lr", "weight_decay", "backbone", "backbone_options", "label_smoothing",
                  "bn_bias_lr_factor", "augment", "precision", "output"}),
    ("jpeg_cost", {"output"}),
])
def test_studies_refuse_the_flags_they_set_and_accept_the_others(script, set_by_the_study):
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    destinations = _destinations(_parser(script))
    assert destinations & fields == fields - set_by_the_study


def test_the_old_flag_spelling_still_sets_the_field():
    parser = _parser("train")
    assert parser.parse_args(["--fixed-centres"]).fixed_centers is True
    assert parser.parse_args(["--no-fixed-centres"]).fixed_centers is False
    assert parser.parse_args([]).fixed_centers == "auto"


def test_latent_dim_is_an_alias_of_embedding_dim():
    from arcface_keras.toolkit import models

    assert _parser("train").parse_args(["--latent-dim", "32"]).embedding_dim == 32
    train_model, _ = models.build_models(3, (8, 8, 1), (0.5,), (0.25,), latent_dim=12,
                                         backbone_options={"widths": (4, 8)})
    assert train_model.get_layer("head").kernel.shape[0] == 12


def test_the_arcface_keras_command_answers_help_without_tensorflow():
    code = ("import sys; sys.argv[0] = 'arcface-keras'\n"
            "from arcface_keras.toolkit.commands import main\n"
            "assert main(['--help']) == 0\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit as exit_info:\n    assert exit_info.code == 0\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "open-set" in result.stdout and "--embedding-dim" in result.stdout
    assert result.stdout.strip().endswith("TF False False") and result.stderr == ""


def test_the_command_runs_every_script_and_refuses_unknown_ones(capsys):
    from arcface_keras.toolkit import commands

    assert set(commands.COMMANDS.values()) <= {name.removesuffix(".py") for name in os.listdir(os.path.join(ROOT, "scripts"))}
    assert commands.main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["train", "--epochs", "0"])
    assert exit_info.value.code == 2 and "epochs=0" in capsys.readouterr().err


def test_train_without_test_evaluation_finishes_with_a_summary(synthetic, tmp_path, capsys):
    module = load_script("train")
    folder = tmp_path / "run"
    assert module.main(["--data", synthetic, "--epochs", "1", "--batch-size", "20", "--embedding-dim", "16",
                        "--backbone-options", '{"widths": [8, 16]}', "--verbose", "0", "--no-evaluate-test",
                        "--output", str(folder)]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    out = capsys.readouterr().out
    assert "test accuracy" not in out and f"validation accuracy {metrics['val_accuracy']:.4f}" in out


@pytest.mark.slow
def test_the_commands_say_in_one_line_when_tensorflow_is_not_their_backend(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    jax = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env={**env, "KERAS_BACKEND": "jax"})
    assert jax.returncode == 2 and len(jax.stderr.splitlines()) == 1, jax.stderr
    assert "KERAS_BACKEND is 'jax'" in jax.stderr
    missing = subprocess.run([sys.executable, "-c", "import sys; sys.modules['tensorflow'] = None; "
                              "from arcface_keras.toolkit.commands import main; main(['evaluate', 'x'])"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT, env={**env, "KERAS_BACKEND": "jax"})
    assert missing.returncode == 2 and missing.stderr.splitlines() == [
        "arcface-keras: the toolkit's commands need TensorFlow (tf.data, SavedModel, tf.distribute): pip install "
        "tensorflow. The library (ArcFaceClassifier, the layers, the losses) runs on JAX and PyTorch without it."]
