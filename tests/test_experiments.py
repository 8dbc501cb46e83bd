import dataclasses
import json

from arcface_keras import experiments
from arcface_keras.training import TrainConfig, resolve_fixed_centres


def _finished_run(tmp_path, config_dict):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "config": config_dict}))
    return str(folder)


def test_run_once_reuses_a_finished_run_and_retrains_a_changed_one(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(experiments, "train", lambda config: calls.append(config) or {"test_accuracy": 0.9})
    config = TrainConfig(fixed_centres=False, output=str(tmp_path / "run"))
    legacy = dataclasses.asdict(config)
    del legacy["fixed_centres"], legacy["easy_margin"]  # a run made before these fields existed
    _finished_run(tmp_path, legacy)
    assert experiments.run_once(config)["test_accuracy"] == 0.5 and calls == []
    # The new default (fixed centres) is a different run: it must not reuse the learned-centre one.
    changed = dataclasses.replace(config, fixed_centres="auto")
    assert experiments.run_once(changed)["test_accuracy"] == 0.9 and calls == [changed]


def test_auto_fixes_centres_only_where_orthogonal_centres_exist():
    assert resolve_fixed_centres(TrainConfig(latent_dim=128), 10)
    assert not resolve_fixed_centres(TrainConfig(latent_dim=3), 10)
    assert not resolve_fixed_centres(TrainConfig(latent_dim=16, sub_centers=2), 10)
    assert resolve_fixed_centres(TrainConfig(latent_dim=3, fixed_centres=True), 10)
    assert not resolve_fixed_centres(TrainConfig(fixed_centres=False), 10)


def test_convergence_variants_keep_their_indices():
    # Run folders are named by index: new variants go at the end.
    names = list(experiments.CONVERGENCE_VARIANTS)
    assert names[4] == "recipe, learned centres" and names[10] == "softmax (same backbone and budget)"
    assert names[16] == "recipe, fixed orthogonal centres"
