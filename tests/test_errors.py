"""Only an error that describes the user's input becomes one line; a programming
error keeps its type and traceback."""

import numpy as np
import pytest
from conftest import TINY

from arcface_keras import backbones
from arcface_keras.toolkit import cli, report
from arcface_keras.errors import ArgumentError, DataError, RunFolderError, UserInputError
from arcface_keras.toolkit.training import TrainConfig, train


def test_a_user_input_error_is_not_a_value_error():
    assert not issubclass(UserInputError, ValueError)  # an `except ValueError` around a bug must not catch it
    assert issubclass(ArgumentError, ValueError)  # the library raises what Keras raises


def test_a_bad_backbone_option_is_one_line_and_a_bug_while_building_keeps_its_traceback(synthetic, tmp_path, monkeypatch):
    with pytest.raises(UserInputError, match=r"cannot build the network model.*Received: widths=5"):
        train(TrainConfig(data=synthetic, epochs=1, output=str(tmp_path / "a"),
                          **{**TINY, "backbone_options": {"widths": 5}}))

    def broken(*args, **kwargs):
        raise TypeError("a bug in the builder")

    monkeypatch.setattr(backbones, "build", broken)
    with pytest.raises(TypeError, match="a bug in the builder"):
        train(TrainConfig(data=synthetic, epochs=1, output=str(tmp_path / "b"), **TINY))
    monkeypatch.setattr(backbones, "build", lambda *a, **k: (_ for _ in ()).throw(ValueError("another bug")))
    with pytest.raises(ValueError, match="another bug"):
        train(TrainConfig(data=synthetic, epochs=1, output=str(tmp_path / "c"), **TINY))


def test_running_out_of_memory_while_reading_an_npz_is_not_called_a_bad_file(synthetic, monkeypatch):
    from arcface_keras.toolkit.data import sources

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(np, "load", exhausted)
    with pytest.raises(MemoryError):
        sources.load_local(synthetic)


def test_a_damaged_npz_is_one_line(tmp_path):
    from arcface_keras.toolkit.data import sources

    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="is not a readable .npz"):
        sources.load_local(str(path))


def test_running_out_of_memory_while_loading_a_run_model_keeps_its_type(finished_run, monkeypatch):
    import keras

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(keras.models, "load_model", exhausted)
    with pytest.raises(MemoryError):
        report.evaluate_folder(str(finished_run))
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: (_ for _ in ()).throw(OSError("truncated")))
    with pytest.raises(RunFolderError, match="is not a readable Keras model"):
        report.evaluate_folder(str(finished_run))


def test_run_or_explain_passes_programming_errors_through(capsys):
    def bug():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        cli.run_or_explain(bug)
    with pytest.raises(SystemExit) as exit_info:
        cli.run_or_explain(lambda: (_ for _ in ()).throw(DataError("--data 'x' does not exist.")))
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: --data 'x' does not exist.\n"
