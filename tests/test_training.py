import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import TINY, synthetic_npz

import arcface_keras  # noqa: F401  (registers the layers for load_model)
from arcface_keras.toolkit import models, training
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig, train


@pytest.mark.parametrize("loss", ["arcface", "cosface", "sphereface", "softmax", "triplet"])
def test_short_run_learns_and_writes_the_run_folder(loss, synthetic, tmp_path):
    folder = tmp_path / loss
    metrics = train(TrainConfig(data=synthetic, loss=loss, epochs=6, batch_size=20, lr=0.05, output=str(folder), **TINY))
    assert metrics["test_accuracy"] >= 0.95, metrics["test_accuracy"]
    for key in ("test_accuracy", "macro_precision", "macro_recall", "macro_f1", "epochs", "train_seconds", "dataset", "loss"):
        assert key in metrics
    assert metrics["loss"] == loss and metrics["dataset"] == "synthetic" and metrics["epochs"] == 6
    for name in ("metrics.json", "model.keras", "saved_model/saved_model.pb", "training_curves.png", "history.csv"):
        assert (folder / name).exists(), name
    assert json.loads((folder / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert not (folder / "backup").exists()  # removed after a finished run
    # against a naive reference on the saved head's kernel
    kernel = keras.ops.convert_to_numpy(keras.models.load_model(folder / "model.keras").get_layer("head").kernel)
    kernel = kernel.astype("float64")
    pairs = [kernel[:, i] @ kernel[:, j] / np.linalg.norm(kernel[:, i]) / np.linalg.norm(kernel[:, j])
             for i in range(kernel.shape[1]) for j in range(kernel.shape[1]) if i != j]
    assert metrics["center_cosine"]["mean"] == pytest.approx(np.mean(pairs), abs=1e-9)
    assert metrics["center_cosine"]["max"] == pytest.approx(np.max(pairs), abs=1e-9)


def test_flip_test_run_exports_a_mirror_invariant_model(synthetic, tmp_path, rng):
    import tensorflow as tf

    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=synthetic, epochs=2, batch_size=20, flip_test=True, output=str(folder), **TINY))
    assert metrics["config"]["flip_test"] is True
    serve = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
    images = rng.integers(0, 256, size=(5, 12, 12, 1)).astype("float32")
    out, mirrored = serve(images=tf.constant(images)), serve(images=tf.constant(images[:, :, ::-1, :].copy()))
    np.testing.assert_allclose(out["probabilities"].numpy(), mirrored["probabilities"].numpy(), atol=1e-5)
    with pytest.raises(UserInputError, match="Received: flip_test='yes'"):
        TrainConfig(flip_test="yes").validate()


@pytest.mark.slow
def test_fastnet_backbone_learns(synthetic, tmp_path):
    options = {**TINY, "backbone_options": {"widths": (8, 16, 16), "stem": 4}}
    metrics = train(TrainConfig(data=synthetic, backbone="fastnet", epochs=6, batch_size=20, lr=0.05,
                                output=str(tmp_path / "run"), **options))
    assert metrics["test_accuracy"] >= 0.95, metrics["test_accuracy"]
    assert abs(metrics["center_cosine"]["mean"]) < 1e-3  # auto → fixed orthogonal centers


@pytest.mark.slow
def test_keras_file_and_saved_model_reload_to_the_same_outputs(synthetic, tmp_path, rng):
    folder = tmp_path / "run"
    train(TrainConfig(data=synthetic, epochs=2, batch_size=20, output=str(folder), **TINY))
    images = rng.integers(0, 256, size=(7, 12, 12, 1)).astype("uint8")
    loaded = keras.models.load_model(folder / "model.keras")  # safe mode, no custom_objects
    expected = models.inference_model(loaded).predict(images.astype("float32"), verbose=0)
    np.save(tmp_path / "images.npy", images)
    # A fresh process that never imports arcface_keras.
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(folder / "saved_model")!r}).signatures["serving_default"]
        images = np.load({str(tmp_path / "images.npy")!r})
        out = serve(images=tf.constant(images.astype("float32")))
        out8 = tf.saved_model.load({str(folder / "saved_model")!r}).signatures["serve_uint8"](images=tf.constant(images))
        assert "arcface_keras" not in sys.modules
        np.savez({str(tmp_path / "served.npz")!r}, **{{k: v.numpy() for k, v in out.items()}}, p8=out8["probabilities"].numpy())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "served.npz")
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(served["p8"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(served["embedding"], expected["embedding"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served["embedding"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(served["class_id"], expected["probabilities"].argmax(axis=1))


def test_killed_run_resumes_where_it_stopped(synthetic, tmp_path, monkeypatch):
    from arcface_keras.toolkit.callbacks import EpochBackup

    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, epochs=4, batch_size=40, output=str(folder), **TINY)
    saved = {}
    original = EpochBackup.on_epoch_end

    def killed_after_backup(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:  # epoch 2 of 4 is backed up, then the process dies
            saved["weights"] = [np.array(w) for w in self.model.get_weights()]
            saved["iterations"] = int(self.model.optimizer.iterations.numpy())
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(EpochBackup, "on_epoch_end", killed_after_backup)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert (folder / "backup").exists() and not (folder / "metrics.json").exists()
    monkeypatch.undo()
    restored, begun = {}, []
    restore = EpochBackup.restore

    def spy(model, latest):
        epoch = restore(model, latest)
        restored.update(epoch=epoch, weights=[np.array(w) for w in model.get_weights()],
                        iterations=int(model.optimizer.iterations.numpy()))
        return epoch

    monkeypatch.setattr(EpochBackup, "restore", staticmethod(spy))
    monkeypatch.setattr(training.EpochTimer, "on_epoch_begin",
                        lambda self, epoch, logs=None: (begun.append(epoch), setattr(self, "_start", 0.0)))
    metrics = train(config)
    assert restored["epoch"] == 2 and begun == [2, 3]  # epochs 0 and 1 were not trained again ...
    assert restored["iterations"] == saved["iterations"]  # ... and resumed from their weights and optimizer state
    for got, expected in zip(restored["weights"], saved["weights"], strict=True):
        np.testing.assert_array_equal(got, expected)
    with open(folder / "history.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [0, 1, 2, 3]
    assert metrics["epochs"] == 4


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices(synthetic, tmp_path):
    code = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from arcface_keras.toolkit.training import TrainConfig, train, make_strategy
        assert make_strategy("mirrored").num_replicas_in_sync == 2
        m = train(TrainConfig(data={synthetic!r}, epochs=3, batch_size=20, strategy="mirrored",
                              output={str(tmp_path / "run")!r}, backbone_options={{"widths": (8, 16)}}, embedding_dim=16, verbose=0))
        print("ACCURACY", m["test_accuracy"])
        # Partial FC: row-sparse gradients all-reduced over the two replicas, PartialSGD's lazy update
        m = train(TrainConfig(data={synthetic!r}, epochs=3, batch_size=20, strategy="mirrored", sample_rate=0.5,
                              output={str(tmp_path / "partial")!r}, backbone_options={{"widths": (8, 16)}}, embedding_dim=16, verbose=0))
        print("ACCURACY", m["test_accuracy"])
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    exact, partial = [float(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("ACCURACY")]
    assert exact >= 0.9 and partial >= 0.9


@pytest.mark.slow
def test_mixed_precision_run_keeps_float32_head(synthetic, tmp_path):
    metrics = train(TrainConfig(data=synthetic, epochs=2, batch_size=20, precision="mixed_bfloat16", output=str(tmp_path / "r"), **TINY))
    assert metrics["precision_policy"] == "mixed_bfloat16"
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]  # the task is easy: bfloat16 must learn it
    model = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert model.get_layer("head").kernel.dtype == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored after the run


@pytest.mark.parametrize(
    "field, value",
    [("loss", "hinge"), ("precision", "fp8"), ("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("strategy", "tpu"),
     ("fixed_centers", "yes")],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(UserInputError, match=f"{field}={value!r}"):
        train(TrainConfig(**{field: value}))


def test_resolve_precision_on_cpu():
    assert training.resolve_precision("auto") == "float32"
    assert training.resolve_precision("mixed_float16") == "mixed_float16"


def test_divergence_stops_the_run_and_exports_nothing(synthetic, tmp_path):
    """Fixed centers never change, so checking only the head (as before) missed this."""
    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, epochs=3, batch_size=20, lr=1e30, lr_warmup_epochs=0, output=str(folder), **TINY)
    with pytest.raises(training.TrainingDiverged, match=r"diverged in epoch 1: .*Lower --lr \(now 1e\+30\)"):
        train(config)
    for name in ("metrics.json", "model.keras", "saved_model", "trained.json"):
        assert not (folder / name).exists(), name


@pytest.mark.slow
def test_two_classes_work_end_to_end(tmp_path, rng):
    data = synthetic_npz(tmp_path / "two.npz", rng, classes=2)
    metrics = train(TrainConfig(data=data, epochs=3, batch_size=20, output=str(tmp_path / "run"), **TINY))
    assert metrics["test_accuracy"] >= 0.9 and len(metrics["per_class"]["f1"]) == 2
    assert not any(key.startswith("top_") for key in metrics)


def test_batch_norm_parameters_can_be_kept_out_of_weight_decay():
    from arcface_keras.toolkit import models

    model, _ = models.build_models(4, (12, 12, 1), (0.5,), (0.25,), **{k: v for k, v in TINY.items() if k != "verbose"})
    for decay_batch_norm in (True, False):
        optimizer = training.make_optimizer(TrainConfig(decay_batch_norm=decay_batch_norm), 10)
        decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
        norms = {v.path for v in model.trainable_variables if v.path.endswith(("/gamma", "/beta"))}
        assert norms and (norms <= decayed) == decay_batch_norm and (norms & decayed == set()) != decay_batch_norm
        assert any(v.path.endswith("/kernel") for v in model.trainable_variables if optimizer._use_weight_decay(v))


def test_lookahead_averages_weights_and_batch_norm_statistics_as_airbench_does():
    from arcface_keras.callbacks import Lookahead

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    model.compile(optimizer="sgd", loss="mse")
    callback = Lookahead(decay=0.9, steps=2, total_steps=6)
    callback.set_model(model)
    callback.on_train_begin()
    rng = np.random.default_rng(0)
    average = None
    for step in range(1, 7):
        callback.on_train_batch_begin(step - 1)
        if average is None:
            average = [v.numpy().copy() for v in model.variables]
        moved = [v.numpy() + rng.normal(size=v.shape).astype("float32") for v in model.variables]
        for variable, value in zip(model.variables, moved):  # a training step: every float variable moves
            variable.assign(value)
        model.optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1)
        expected = moved
        if step % 2 == 0:  # the naive reference: lerp toward the weights by 1 − d, then copy back
            decay = 0.9 ** 2 * (step / 6) ** 3
            average = expected = [a + (1 - decay) * (m - a) for a, m in zip(average, moved)]
        for value, variable in zip(expected, model.variables):
            np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-5)
    names = {v.path.split("/")[-1] for v in callback.variables}
    assert {"kernel", "bias", "moving_mean", "moving_variance", "gamma", "beta"} <= names
    for variable in model.variables:
        variable.assign(variable.numpy() + 1.0)
    callback.on_train_end()  # the weights end as the average
    for a, v in zip(average, model.variables):
        np.testing.assert_allclose(v.numpy(), a, rtol=1e-5, atol=1e-6)
    optimizer = training.make_optimizer(TrainConfig(ema_momentum=0.9, lookahead_steps=5), 1)
    assert not optimizer.use_ema  # lookahead replaces Keras' EMA


def test_lookahead_leaves_schedule_state_alone():
    from arcface_keras import ArcMarginLayer
    from arcface_keras.callbacks import Lookahead

    embeddings = keras.Input((4,))
    head = ArcMarginLayer(3, name="head")
    model = keras.Model(embeddings, head(keras.layers.BatchNormalization()(keras.layers.Dense(4)(embeddings))))
    model.compile(optimizer="sgd", loss="mse")
    callback = Lookahead(decay=0.9, steps=1, total_steps=2)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    head.margin_factor.assign(0.5)  # a schedule moves them during training (MarginScheduler)
    head.current_scale.assign(8.0)
    callback.on_train_batch_end(0)
    callback.on_train_end()
    assert float(head.margin_factor.numpy()) == 0.5 and float(head.current_scale.numpy()) == 8.0
    names = sorted(v.path.split("/")[-1] for v in callback.variables)
    assert names == ["beta", "bias", "gamma", "kernel", "kernel", "moving_mean", "moving_variance"]


def test_triangle_schedule_matches_airbench_piecewise_linear_reference():
    from arcface_keras.optimizers import TriangleSchedule

    total, lr = 100, 0.4
    schedule = TriangleSchedule(lr, total)
    peak = int(0.23 * total)
    for step in range(total + 1):  # naive reference: 0.2·lr → lr at 23 % of the steps → 0.07·lr at the end
        if step <= peak:
            expected = lr * (0.2 + (1 - 0.2) * step / peak)
        else:
            expected = lr * (1 + (0.07 - 1) * (step - peak) / (total - peak))
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6)
    assert float(schedule(total + 50)) == pytest.approx(0.07 * lr)  # held after the last step
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(again(37)) == pytest.approx(float(schedule(37)))
    optimizer = training.make_optimizer(TrainConfig(lr=0.4, epochs=10, lr_schedule="triangle"), 10)
    assert float(optimizer.learning_rate) == pytest.approx(0.2 * 0.4)  # step 0
    cosine = training.make_optimizer(TrainConfig(lr=0.4, epochs=10), 10)
    assert float(cosine.learning_rate) == 0.0  # warm-up from 0 (the default is unchanged)


def test_adam_gets_its_own_learning_rate():
    assert TrainConfig(optimizer="adam").learning_rate == 1e-3
    assert TrainConfig().learning_rate == 0.05 and TrainConfig(optimizer="adam", lr=0.01).learning_rate == 0.01


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical(synthetic, tmp_path):
    code = textwrap.dedent(
        f"""
        import json
        from arcface_keras.toolkit.training import TrainConfig, train
        results = []
        for run in ("a", "b"):
            train(TrainConfig(data={synthetic!r}, epochs=2, batch_size=20, deterministic=True, augment="shift",
                              output={str(tmp_path)!r} + "/" + run, backbone_options={{"widths": (8, 16)}},
                              embedding_dim=16, verbose=0))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    timing = {"train_seconds", "seconds_per_epoch", "images_per_second", "config"}
    a, b = ({k: v for k, v in json.loads((tmp_path / run / "metrics.json").read_text()).items() if k not in timing}
            for run in ("a", "b"))
    assert a == b
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()


@pytest.mark.slow
def test_label_smoothing_and_weight_averaging_train_and_end_with_the_average(tmp_path, monkeypatch):
    import keras

    from arcface_keras.toolkit import training

    finals = []
    original = keras.optimizers.SGD.finalize_variable_values

    def spy(self, var_list):  # Keras' EMA: the averages replace the weights when fit ends
        finals.append(self.use_ema)
        return original(self, var_list)

    monkeypatch.setattr(keras.optimizers.SGD, "finalize_variable_values", spy)
    metrics = training.train(TrainConfig(epochs=3, batch_size=50, label_smoothing=0.1, ema_momentum=0.9,
                                         output=str(tmp_path / "run"), **TINY))
    assert finals == [True]
    assert metrics["test_accuracy"] > 0.5


def test_reflect_padding_and_alternating_flip_train_and_are_recorded(synthetic, tmp_path):
    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=synthetic, epochs=2, batch_size=20, augment="shift-flip", pad_mode="reflect",
                                alternating_flip=True, output=str(folder), **TINY))
    assert metrics["config"]["pad_mode"] == "reflect" and metrics["config"]["alternating_flip"] is True
    with pytest.raises(UserInputError, match="alternating_flip=True"):
        TrainConfig(augment="shift", alternating_flip=True).validate()
    with pytest.raises(UserInputError, match="pad_mode='edge'"):
        TrainConfig(pad_mode="edge").validate()


def test_lookahead_run_learns_and_ends_with_the_average(synthetic, tmp_path, monkeypatch):
    from arcface_keras import callbacks

    ends = []
    original = callbacks.Lookahead.on_train_end
    monkeypatch.setattr(callbacks.Lookahead, "on_train_end", lambda self, logs=None: (ends.append(True), original(self, logs)))
    metrics = train(TrainConfig(data=synthetic, epochs=4, batch_size=20, ema_momentum=0.9, lookahead_steps=3,
                                output=str(tmp_path / "run"), **TINY))
    assert ends == [True]
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]


@pytest.mark.parametrize("averaging", [dict(ema_momentum=0.99), dict(ema_momentum=0.9, lookahead_steps=4)])
def test_validation_accuracy_is_that_of_the_saved_weights(synthetic, tmp_path, averaging):
    # Keras swaps in the moving average after the last epoch's callbacks, and lookahead averages once more when
    # the steps are not a multiple of K: the recorded number must describe the weights that are saved.
    config = TrainConfig(data=synthetic, epochs=2, batch_size=20, output=str(tmp_path / "run"), **averaging, **TINY)
    metrics = train(config)
    splits = training.load_data(config)
    saved = models.inference_model(keras.models.load_model(tmp_path / "run" / "model.keras"))
    probabilities = models.predict(saved, splits.x_val)["probabilities"]
    assert metrics["val_accuracy"] == float((probabilities.argmax(axis=1) == splits.y_val).mean())
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # the per-epoch rows stay as they were


def test_test_each_epoch_records_accuracy_against_training_seconds(synthetic, tmp_path):
    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=synthetic, epochs=2, batch_size=20, test_each_epoch=True, output=str(folder), **TINY))
    rows = json.loads((folder / "test_each_epoch.json").read_text())
    seconds = json.loads((folder / "epoch_seconds.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2] and metrics["test_each_epoch"] == rows
    assert [row["train_seconds"] for row in rows] == pytest.approx(np.cumsum(seconds).tolist())
    # no weight averaging: the last epoch's weights are the saved ones, so the last row is the run's test accuracy
    assert rows[-1]["test_accuracy"] == metrics["test_accuracy"]
    with pytest.raises(UserInputError, match="--test-each-epoch"):
        TrainConfig(data=synthetic, test_each_epoch=True, evaluate_test=False).validate()


# --backend torch: the fit in a child process on PyTorch, evaluation and export here on TensorFlow.
TORCH_FASTNET = {"widths": [8, 16, 16], "whiten": 2, "activation": "gelu", "dirac": True, "bn_scale": False,
                 "layout": "channels_first"}


def test_torch_backend_fits_in_a_child_and_tensorflow_evaluates_and_exports(synthetic, tmp_path, rng):
    from arcface_keras.toolkit import export

    folder = tmp_path / "run"
    metrics = train(TrainConfig(data=synthetic, backbone="fastnet", backbone_options=TORCH_FASTNET, embedding_dim=16,
                                epochs=4, batch_size=20, lr=0.05, backend="torch", output=str(folder), verbose=0))
    assert metrics["backend"] == "torch" and keras.backend.backend() == "tensorflow"
    assert metrics["test_accuracy"] > 0.6  # 4 classes: chance is 0.25
    with open(folder / "config.json") as file:
        assert json.load(file)["backend"] == "torch"
    # The SavedModel TensorFlow exported scores as the .keras model the PyTorch child saved.
    import tensorflow as tf

    images = rng.integers(0, 255, size=(5, 12, 12, 1)).astype("float32")
    expected = models.inference_model(keras.models.load_model(folder / "model.keras")).predict(images, verbose=0)
    serve = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
    served = serve(images=tf.constant(images))
    np.testing.assert_allclose(served["embedding"].numpy(), expected["embedding"], atol=1e-4)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected["probabilities"], atol=1e-4)


def test_torch_backend_refuses_what_only_tensorflow_trains(synthetic, tmp_path):
    for settings, flag in (({"sample_rate": 0.5}, "--sample-rate"), ({"strategy": "mirrored"}, "--strategy"),
                           ({"deterministic": True}, "--deterministic"), ({"loss": "triplet"}, "--loss"),
                           ({"jit_compile": True}, "--jit-compile")):
        with pytest.raises(UserInputError, match=f"--backend torch .*{flag} needs --backend tensorflow"):
            TrainConfig(data=synthetic, backend="torch", **settings).validate()
    with pytest.raises(UserInputError, match="--backend must be one of"):
        TrainConfig(backend="jax").validate()


def test_torch_backend_reports_the_childs_input_error_in_one_line(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(UserInputError) as caught:
        train(TrainConfig(data=str(tmp_path / "missing.npz"), backend="torch", output=str(folder), verbose=0))
    assert "missing.npz" in str(caught.value) and "Traceback" not in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    assert not folder.exists()


@pytest.mark.slow
def test_torch_backend_run_killed_with_its_parent_resumes(synthetic, tmp_path):
    import signal
    import time

    folder = tmp_path / "run"
    settings = dict(data=synthetic, backbone="fastnet", backbone_options=TORCH_FASTNET, embedding_dim=16, epochs=30,
                    batch_size=10, backend="torch", output=str(folder), verbose=0)
    code = ("import sys; sys.path.insert(0, 'tests'); from arcface_keras.toolkit.training import TrainConfig, train; "
            f"train(TrainConfig(**{settings!r}))")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.time() + 240
    while not (folder / "backup").exists() or len(os.listdir(folder / "backup")) < 1:
        assert parent.poll() is None and time.time() < deadline, "no backup before the parent ended"
        time.sleep(0.5)
    time.sleep(2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(3)  # the child dies with its parent (PR_SET_PDEATHSIG): nothing writes the folder any more
    with open(folder / "history.csv") as file:
        rows_then = [int(row["epoch"]) for row in csv.DictReader(file)]
    time.sleep(3)
    with open(folder / "history.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == rows_then
    assert not (folder / "metrics.json").exists() and 0 < len(rows_then) < 30
    metrics = train(TrainConfig(**{**settings, "epochs": 30}))
    with open(folder / "history.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == list(range(30))  # each epoch once
    assert metrics["backend"] == "torch" and metrics["epochs"] == 30


def test_torch_backend_without_torch_installed_says_so_in_one_line(synthetic, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(UserInputError, match="--backend torch needs PyTorch installed: pip install torch"):
        train(TrainConfig(data=synthetic, backend="torch", output=str(tmp_path / "run"), verbose=0))
    assert not (tmp_path / "run").exists()
