import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import TINY

from arcface_keras import AngularMarginLayer
from arcface_keras.studies import compare, convergence, open_set, runner
from arcface_keras.toolkit import training
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.training import TrainConfig, resolve_fixed_centers


def _finished_run(tmp_path, config_dict):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "config": config_dict}))
    return str(folder)


def test_run_once_reuses_a_finished_run_and_retrains_a_changed_one(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    config = TrainConfig(fixed_centers=False, output=str(tmp_path / "run"))
    _finished_run(tmp_path, training.config_record(config))
    assert runner.run_once(dataclasses.replace(config, verbose=0))["test_accuracy"] == 0.5 and calls == []
    changed = dataclasses.replace(config, fixed_centers="auto")
    assert runner.run_once(changed)["test_accuracy"] == 0.9 and calls == [changed]


def test_run_once_retrains_runs_made_before_a_setting_existed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    config = TrainConfig(output=str(tmp_path / "run"))
    legacy = training.config_record(config)
    del legacy["decay_batch_norm"]  # which value made it is not known
    legacy["fixed_centres"] = legacy.pop("fixed_centers")  # renamed fields are still read
    _finished_run(tmp_path, legacy)
    assert runner.run_once(config)["test_accuracy"] == 0.9 and calls == [config]
    legacy["decay_batch_norm"] = True
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "config": legacy}))
    assert runner.run_once(config)["test_accuracy"] == 0.5 and len(calls) == 1


def test_run_once_reuses_runs_made_before_a_setting_whose_default_means_what_they_did(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    config = TrainConfig(output=str(tmp_path / "run"))
    legacy = training.config_record(config)
    for name in training.DEFAULT_OMITTED:  # stored before these fields existed: their defaults are what ran
        legacy.pop(name, None)
    _finished_run(tmp_path, legacy)
    assert runner.run_once(config)["test_accuracy"] == 0.5 and calls == []
    changed = dataclasses.replace(config, pad_mode="reflect")  # a value other than what ran
    assert runner.run_once(changed)["test_accuracy"] == 0.9 and calls == [changed]


def test_run_once_ignores_fields_the_loss_never_reads(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    softmax = TrainConfig(loss="softmax", output=str(tmp_path / "run"))
    _finished_run(tmp_path, dataclasses.asdict(softmax))
    margin_only = dataclasses.replace(softmax, scale=30.0, margin=0.5, fixed_centers=False, margin_warmup_epochs=0)
    assert runner.run_once(margin_only)["test_accuracy"] == 0.5 and calls == []
    # A field softmax does read still retrains it.
    assert runner.run_once(dataclasses.replace(softmax, lr=0.2))["test_accuracy"] == 0.9 and len(calls) == 1


def test_run_once_keeps_the_triplet_margin(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    triplet = TrainConfig(loss="triplet", margin=0.2, output=str(tmp_path / "run"))
    _finished_run(tmp_path, dataclasses.asdict(triplet))
    assert runner.run_once(dataclasses.replace(triplet, scale=64.0))["test_accuracy"] == 0.5 and calls == []
    assert runner.run_once(dataclasses.replace(triplet, margin=0.5))["test_accuracy"] == 0.9 and len(calls) == 1


def test_center_cosines_come_from_metrics_when_recorded(tmp_path):
    recorded = {"mean": 0.25, "max": 0.5}
    # No model.keras in the folder: reading it would fail, so the recorded value must be used.
    assert convergence._center_cosines(str(tmp_path), {"center_cosine": recorded}) == recorded


def test_auto_fixes_centers_only_where_orthogonal_centers_exist():
    assert resolve_fixed_centers(TrainConfig(embedding_dim=128), 10)
    assert not resolve_fixed_centers(TrainConfig(embedding_dim=3), 10)
    assert not resolve_fixed_centers(TrainConfig(embedding_dim=16, sub_centers=2), 10)
    assert not resolve_fixed_centers(TrainConfig(fixed_centers=False), 10)


def test_explicit_fixed_centers_that_cannot_be_orthogonal_are_refused():
    with pytest.raises(UserInputError, match="--embedding-dim ≥ classes × sub-centers = 10"):
        resolve_fixed_centers(TrainConfig(embedding_dim=3, fixed_centers=True), 10)
    with pytest.warns(UserWarning, match="cannot be mutually orthogonal"):
        AngularMarginLayer(10, fixed_centers=True).build((None, 3))


def test_convergence_variants_keep_their_indices():
    # Run folders are named by index: new variants go at the end.
    names = list(convergence.CONVERGENCE_VARIANTS)
    assert names[4] == "recipe, learned centers" and names[10] == "softmax (same backbone and budget)"
    assert names[16] == "recipe, fixed orthogonal centers"


def test_open_set_scores_on_separable_embeddings():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 8)
    embeddings = np.eye(16)[labels] + 0.05 * rng.normal(size=(40, 16))
    impostors = np.eye(16)[np.repeat([10, 11], 50)] + 0.05 * rng.normal(size=(100, 16))
    scores = open_set.open_set_scores(embeddings, labels, impostors, shot=1)
    assert scores["closed_set_accuracy"] == 1.0 and scores["dir_at_fpir_1e-2"] == 1.0
    assert scores["fpir_measured"] <= 0.01
    with pytest.raises(UserInputError, match="leaves no probe"):
        open_set.open_set_scores(embeddings, labels, impostors, shot=8)


@pytest.mark.slow
def test_open_set_study_trains_on_some_classes_and_enrols_the_others(tmp_path):
    base = TrainConfig(epochs=1, batch_size=50, backbone_options={"widths": (8, 16)}, embedding_dim=16, verbose=0)
    summary = open_set.open_set(base, str(tmp_path), ["[0-4]"], ["[5-7]"], ["[89]"], losses=("arcface", "softmax"),
                                   seeds=(0,), shots=(1, 5))
    assert set(summary["results"]) == {"arcface, K=1", "arcface, K=5", "softmax, K=1", "softmax, K=5"}
    metrics = json.loads((tmp_path / "arcface-seed0" / "metrics.json").read_text())
    assert metrics["class_names"] == ["0", "1", "2", "3", "4"]
    for result in summary["results"].values():
        assert 0.0 <= result["dir_at_fpir_1e-2"]["mean"] <= result["closed_set_accuracy"]["mean"] <= 1.0
    assert (tmp_path / "open-set-digits.md").read_text().count("K=") == 4


@pytest.mark.slow
def test_compare_reports_eer_and_tta_accuracy_and_reuses_finished_runs(synthetic, tmp_path, monkeypatch):
    base = TrainConfig(data=synthetic, epochs=2, batch_size=20, **TINY)
    folder = str(tmp_path / "study")
    summary = compare.compare(base, folder, losses=("arcface", "softmax"), seeds=(0, 1), tta=("translate",))
    for loss in ("arcface", "softmax"):
        result = summary["results"][loss]
        assert len(result["tta_accuracy"]["values"]) == 2 and len(result["eer"]["values"]) == 2
        assert os.path.exists(os.path.join(folder, f"{loss}-seed0", "shift_test", "metrics.json"))
    markdown = compare.compare_markdown(summary)
    assert "with TTA (translate)" in markdown and "EER" in markdown
    # A second call trains and evaluates nothing: every number comes from the run folders.
    monkeypatch.setattr(runner, "train", lambda config: pytest.fail("retrained"))
    from arcface_keras.toolkit import report
    monkeypatch.setattr(report, "evaluate_folder", lambda *a, **k: pytest.fail("re-evaluated"))
    assert compare.compare(base, folder, losses=("arcface", "softmax"), seeds=(0, 1), tta=("translate",)) == summary


def test_each_set_of_test_views_has_its_own_folder():
    from arcface_keras.toolkit import report

    folders = [report.evaluation_subfolder(flip, shift) for flip in (False, True) for shift in (False, True)]
    assert folders == ["", "shift_test", "flip_test", "tta"]


def test_tta_metrics_reuse_a_stored_evaluation_only_for_the_same_views(tmp_path, monkeypatch):
    from arcface_keras.toolkit import report

    (tmp_path / "run" / "tta").mkdir(parents=True)
    (tmp_path / "run" / "tta" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "flip_test": True,
                                                                        "translate_test": True}))
    config = TrainConfig(output=str(tmp_path / "run"))
    monkeypatch.setattr(report, "evaluate_folder", lambda folder, **views: {"test_accuracy": 0.7, **views})
    assert runner.tta_metrics(config, True, True)["test_accuracy"] == 0.5
    assert runner.tta_metrics(config, False, True)["test_accuracy"] == 0.7


def test_seeded_cells_run_seed_by_seed_so_a_stopped_study_has_every_loss(monkeypatch):
    order = []
    monkeypatch.setattr(runner, "check_runs", lambda configs: None)
    monkeypatch.setattr(runner, "run_once", lambda config: order.append(config.output) or {"test_accuracy": 0.5})
    cells = {loss: [TrainConfig(loss=loss, seed=seed, output=f"{loss}-{seed}") for seed in (0, 1)]
             for loss in ("arcface", "softmax")}
    results, _ = runner.seeded_cells(cells)
    assert order == ["arcface-0", "softmax-0", "arcface-1", "softmax-1"]
    assert results["softmax"]["test_accuracy"]["mean"] == 0.5


def test_compare_writes_its_summary_after_every_seed_so_a_stopped_study_reports(tmp_path, monkeypatch):
    def fake_run(config):
        if config.seed == 1 and config.loss == "softmax":
            raise KeyboardInterrupt  # the study is stopped here
        return {"dataset": "parts", "train_images": 10, "test_accuracy": 0.5 + 0.1 * config.seed, "seconds_per_epoch": 1.0}

    monkeypatch.setattr(runner, "check_runs", lambda configs: None)
    monkeypatch.setattr(runner, "run_once", fake_run)
    with pytest.raises(KeyboardInterrupt):
        compare.compare(TrainConfig(), str(tmp_path), losses=("arcface", "softmax"), seeds=(0, 1))
    stored = json.loads((tmp_path / "compare-parts.json").read_text())
    assert stored["seeds"] == [0] and stored["results"]["softmax"]["test_accuracy"]["mean"] == 0.5
