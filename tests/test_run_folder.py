"""Run folders: named from the data, never overwritten silently, resumed
after a kill at any moment with every epoch trained and logged once."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, TINY, load_script, snapshot, synthetic_npz

from arcface_keras.toolkit import callbacks, run_folder, training
from arcface_keras.errors import RunFolderError
from arcface_keras.toolkit.training import TrainConfig, train


def _epochs(folder):
    with open(os.path.join(folder, "history.csv")) as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_default_run_folder_is_named_from_the_data_loaded():
    assert TrainConfig(data="some/where/my-photos.npz").run_folder == os.path.join("saved_models", "my_photos-arcface")
    assert TrainConfig(dataset="mnist", data="x.npz", loss="softmax").run_folder == os.path.join("saved_models", "mnist-softmax")
    assert TrainConfig().run_folder == os.path.join("saved_models", "digits-arcface")


def test_study_default_folder_is_named_from_the_data_loaded(tmp_path, monkeypatch, rng):
    data = synthetic_npz(tmp_path / "parts.npz", rng)
    from arcface_keras.studies import compare

    script = load_script("compare")
    seen = {}
    monkeypatch.setattr(compare, "compare", lambda base, folder, *a: seen.setdefault("folder", folder) and {"dataset": "parts"})
    monkeypatch.setattr(compare, "compare_markdown", lambda summary: "")
    script.main(["--data", data])
    assert seen["folder"] == os.path.join("saved_models", "compare-parts")


def test_finished_run_is_refused_then_replaced_with_overwrite(finished_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    config = TrainConfig(**json.loads((folder / "config.json").read_text()))
    config.output = str(folder)
    before = snapshot(folder)
    with pytest.raises(RunFolderError, match="finished run; pass --overwrite"):
        train(config)
    assert snapshot(folder) == before
    config.overwrite, config.epochs = True, 1
    metrics = train(config)
    assert metrics["epochs"] == 1 and _epochs(folder) == [0]  # the old history is gone, not appended to
    assert json.loads((folder / "epoch_seconds.json").read_text()).__len__() == 1


@pytest.mark.slow
def test_unfinished_run_with_other_settings_is_refused(synthetic, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, epochs=3, batch_size=40, output=str(folder), **TINY)
    _kill_after_epoch(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.undo()
    config.epochs = 5
    with pytest.raises(RunFolderError, match=r"other settings \(--epochs: 3 there, 5 now\)"):
        train(config)
    config.verbose = 1  # a setting that changes no result does not block the resume
    config.epochs = 3
    assert train(config)["epochs"] == 3 and _epochs(folder) == [0, 1, 2]


def test_output_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        run_folder.inspect(str(tmp_path / "file"), None)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_text("x")
    with pytest.raises(RunFolderError, match="holds no run"):
        run_folder.inspect(str(tmp_path / "photos"), None, overwrite=True)


def _kill_after_epoch(monkeypatch, epoch, where=callbacks.EpochBackup):
    """Raise KeyboardInterrupt in `where`'s on_epoch_end of `epoch` (before it acts)."""
    original = where.on_epoch_end

    def killed(self, index, logs=None):
        if index == epoch:
            raise KeyboardInterrupt("simulated kill")
        return original(self, index, logs)

    monkeypatch.setattr(where, "on_epoch_end", killed)


def test_kill_between_log_and_backup_logs_each_epoch_once(synthetic, tmp_path, monkeypatch):
    """Killed after history.csv got epoch 1 but before its backup: epoch 1 is
    trained again and logged once (Keras' CSVLogger(append=True) logged it twice)."""
    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, epochs=3, batch_size=40, output=str(folder), **TINY)
    _kill_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert _epochs(folder) == [0, 1]
    monkeypatch.undo()
    train(config)
    assert _epochs(folder) == [0, 1, 2]
    assert len(json.loads((folder / "epoch_seconds.json").read_text())) == 3
    assert not (folder / "backup").exists()


def test_kill_after_training_resumes_without_training_again(synthetic, tmp_path, monkeypatch):
    """Killed while exporting: the rerun trains nothing (the backup was kept
    until model.keras was written), evaluates and exports."""
    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, epochs=2, batch_size=40, output=str(folder), **TINY)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(training.export, "export_saved_model", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    history = (folder / "history.csv").read_bytes()
    monkeypatch.undo()
    fits = []
    monkeypatch.setattr(training, "_fit", lambda *a: fits.append(a))
    metrics = train(config)
    assert fits == [] and metrics["epochs"] == 2 and (folder / "history.csv").read_bytes() == history
    assert (folder / "saved_model" / "saved_model.pb").exists()


def test_triplet_run_resumed_after_its_last_epoch_keeps_class_centers(synthetic, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    config = TrainConfig(data=synthetic, loss="triplet", epochs=4, batch_size=20, output=str(folder), **TINY)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(training, "save_model_atomic", killed)  # after the last epoch, before model.keras
    with pytest.raises(KeyboardInterrupt):
        train(config)
    history = (folder / "history.csv").read_bytes()
    monkeypatch.undo()
    metrics = train(config)
    assert (folder / "history.csv").read_bytes() == history  # no epoch trained again
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]


KILL_DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from arcface_keras.toolkit import export, training
    data, output, where = sys.argv[1:4]

    def kill(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "mid-epoch":
        class Killer(training.EpochTimer):
            def on_epoch_begin(self, epoch, logs=None):
                super().on_epoch_begin(epoch, logs)
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 2 and batch == 2:
                    kill()

        training.EpochTimer = Killer
    elif where == "export":
        export._replace_folder = kill  # the new export is written, not yet in place
    training.train(training.TrainConfig(data=data, epochs=4, batch_size=40, output=output,
                                        backbone_options={"widths": [8, 16]}, embedding_dim=16, verbose=2))
    """
)


@pytest.mark.slow
def test_kill_9_mid_epoch_and_during_export_then_the_same_command_finishes(synthetic, tmp_path):
    folder = tmp_path / "run"

    def run(where):
        result = subprocess.run([sys.executable, "-u", "-c", KILL_DRIVER, synthetic, str(folder), where],
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        trained = [int(n) for n in re.findall(r"^Epoch (\d+)/4", result.stdout, re.MULTILINE)]
        return result.returncode, trained, result.stderr

    code, trained, stderr = run("mid-epoch")
    assert code == -9 and trained == [1, 2, 3], stderr[-2000:]
    assert _epochs(folder) == [0, 1] and not (folder / "metrics.json").exists()
    code, trained, stderr = run("export")
    assert code == -9 and trained == [3, 4], stderr[-2000:]  # epochs 1-2 were not trained again
    assert _epochs(folder) == [0, 1, 2, 3] and not (folder / "saved_model").exists()
    history = (folder / "history.csv").read_bytes()
    code, trained, stderr = run("none")
    assert code == 0 and trained == [], stderr[-2000:]
    assert (folder / "history.csv").read_bytes() == history
    assert len(json.loads((folder / "epoch_seconds.json").read_text())) == 4
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["test_accuracy"] > 0.5
    assert (folder / "saved_model" / "saved_model.pb").exists() and (folder / "model.keras").exists()
    leftovers = [name for name in os.listdir(folder) if name.startswith(".") or name == "backup"]
    assert leftovers == []


def test_written_files_get_the_mode_open_would_give(tmp_path):
    from arcface_keras.toolkit.io import current_umask, write_json_atomic

    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o666 & ~current_umask()


def test_export_replaces_an_earlier_export_in_one_step(tmp_path):
    from arcface_keras.toolkit import export

    for version in ("old", "new"):
        staged = tmp_path / f"staged-{version}"
        staged.mkdir()
        (staged / "version").write_text(version)
        export._replace_folder(str(staged), str(tmp_path / "saved_model"))
        assert (tmp_path / "saved_model" / "version").read_text() == version
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]
    assert export._exchange(str(tmp_path / "saved_model"), str(tmp_path / "missing")) is False


def test_history_log_drops_the_epochs_a_resumed_run_trains_again(tmp_path):
    path = str(tmp_path / "history.csv")
    log = callbacks.HistoryLog(path)
    for epoch in range(3):
        log.on_epoch_begin(epoch)
        log.on_epoch_end(epoch, {"loss": np.float32(1.0 / (epoch + 1)), "val_accuracy": 0.5})
    resumed = callbacks.HistoryLog(path)
    resumed.on_epoch_begin(1)
    resumed.on_epoch_end(1, {"loss": 0.25, "val_accuracy": 0.75})
    with open(path) as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"] and float(rows[1]["loss"]) == 0.25
