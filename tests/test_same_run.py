"""One rule decides "same run": resuming an unfinished run folder and reusing a
finished run of a study compare every result-deciding setting, stored or
defaulted, and the refusal names the differing flag."""

import dataclasses
import json

import pytest

from arcface_keras.studies import runner
from arcface_keras.toolkit import run_folder
from arcface_keras.toolkit.config import DEFAULT_OMITTED, RESULT_FREE_FIELDS, TrainConfig, config_record, differing_settings
from arcface_keras.errors import RunFolderError

# A value other than the default for every field that can change a run's results.
CHANGED = {
    "dataset": "mnist", "data": "other.npz", "image_size": [16, 16], "color_mode": "rgb", "cache": "memory",
    "classes": ["a*"], "loss": "cosface", "backbone": "fastnet", "epochs": 31, "batch_size": 64,
    "embedding_dim": 64, "scale": 30.0, "margin": 0.4, "sub_centers": 3, "fixed_centers": True, "easy_margin": True,
    "sample_rate": 0.5, "flip_test": True, "translate_test": True, "margin_warmup_epochs": 2.0, "optimizer": "adam",
    "lr": 0.2, "momentum": 0.8, "weight_decay": 0.03, "decay_batch_norm": False, "bn_bias_lr_factor": 8.0,
    "lr_warmup_epochs": 2.0, "lr_schedule": "triangle", "label_smoothing": 0.2, "ema_momentum": 0.9,
    "lookahead_steps": 5, "augment": "shift", "pad_mode": "reflect", "alternating_flip": True, "seed": 1,
    "precision": "mixed_bfloat16", "jit_compile": True, "strategy": "mirrored", "train_samples": 100,
    "imbalance_ratio": 10.0, "per_class_margins": True, "evaluate_test": False, "validation_fraction": 0.2,
    "backbone_options": {"widths": [8]}, "weights": "imagenet", "freeze_backbone_epochs": 2,
    "backbone_lr_factor": 0.1, "backend": "torch",
}


def test_every_result_deciding_field_has_a_changed_value():
    fields = {field.name for field in dataclasses.fields(TrainConfig)} - set(RESULT_FREE_FIELDS)
    assert fields == set(CHANGED)  # a new field needs a line here


def _unfinished(folder, config):
    folder.mkdir()
    (folder / run_folder.CONFIG).write_text(json.dumps(config_record(config)))


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_an_unfinished_run_is_resumed_only_under_its_own_settings(tmp_path, name):
    folder = tmp_path / "run"
    made = dataclasses.replace(TrainConfig(output=str(folder)), **{name: CHANGED[name]})
    _unfinished(folder, made)
    assert run_folder.inspect(str(folder), made) == "resume"
    flag = "--" + name.replace("_", "-")
    with pytest.raises(RunFolderError, match=f"other settings \\({flag}: "):
        run_folder.inspect(str(folder), TrainConfig(output=str(folder)))  # the plain command


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_finished_run_is_reused_only_under_its_own_settings(tmp_path, name):
    folder = tmp_path / "run"
    made = dataclasses.replace(TrainConfig(output=str(folder)), **{name: CHANGED[name]})
    folder.mkdir()
    (folder / run_folder.METRICS).write_text(json.dumps({"test_accuracy": 0.5, "config": config_record(made)}))
    assert runner.finished_metrics(made) == {"test_accuracy": 0.5, "config": json.loads(json.dumps(config_record(made)))}
    assert runner.finished_metrics(TrainConfig(output=str(folder))) is None


def test_a_setting_stored_before_it_existed_ran_at_its_default():
    stored = config_record(TrainConfig())
    for name in DEFAULT_OMITTED:
        del stored[name]
    assert differing_settings(stored, TrainConfig()) == []
    assert differing_settings(stored, TrainConfig(label_smoothing=0.2)) == ["label_smoothing"]
    del stored["decay_batch_norm"]  # not known which value made it
    assert differing_settings(stored, TrainConfig()) == ["decay_batch_norm"]
