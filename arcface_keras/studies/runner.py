"""The studies' shared runner: train each run of a study once, in its own run
folder under the study's folder, so an interrupted study resumes: finished
runs of the same settings (the one same-run rule, `config.differing_settings`,
which resuming a run folder uses too) are read back, not trained again.
"""

import itertools
import json
import os

import numpy as np

from arcface_keras.errors import RunFolderError
from arcface_keras.toolkit import run_folder
from arcface_keras.toolkit.config import differing_settings
from arcface_keras.toolkit.training import train

SUMMARY_KEYS = ("test_accuracy", "macro_precision", "macro_recall", "macro_f1", "map_at_r", "eer", "seconds_per_epoch")


def finished_metrics(config):
    """The metrics of a finished run of `config` in its run folder, or None
    (no finished run there, or one made with other settings:
    `config.differing_settings`, the rule that resuming uses too)."""
    path = os.path.join(config.run_folder, run_folder.METRICS)
    if not os.path.exists(path):
        return None
    with open(path) as file:
        metrics = json.load(file)
    stored = metrics.get("config")
    if not isinstance(stored, dict) or differing_settings(stored, config):
        return None
    return metrics


def check_runs(configs):
    """Refuse a study before it trains anything: every config valid, every
    run folder usable (finished runs of the same settings are reused)."""
    for config in configs:  # every setting first, then the folders
        config.validate()
    for config in configs:
        study = os.path.dirname(config.run_folder)
        if os.path.exists(study) and not os.path.isdir(study):
            raise RunFolderError(f"--folder {study!r} is a file, not a folder; choose a folder path.")
        if finished_metrics(config) is None:
            run_folder.inspect(config.run_folder, config, config.overwrite)


def run_once(config):
    """Train `config` unless its run folder already holds a finished run of it.

    A stored run counts as `config` when every setting that decides its
    results is equal (`config.differing_settings`: a softmax run is reused when
    only the margin head's settings changed, any run when only `verbose`
    changed).
    """
    return finished_metrics(config) or train(config)


def mean_std(values):
    values = np.asarray(values, dtype="float64")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist()}


def tta_metrics(config, flip_test, translate_test):
    """The test metrics of `config`'s finished run under test-time augmentation
    (`report.evaluate_folder`, kept in the run's ``tta/`` or ``flip_test/``)."""
    from arcface_keras.toolkit import report

    path = os.path.join(config.run_folder, report.evaluation_subfolder(flip_test, translate_test), run_folder.METRICS)
    if os.path.exists(path):
        with open(path) as file:
            stored = json.load(file)
        # run folders evaluated before shift_test/ existed hold shifts-only results in tta/
        if (stored.get("flip_test"), stored.get("translate_test")) == (flip_test, translate_test):
            return stored
    return report.evaluate_folder(config.run_folder, flip_test=flip_test, translate_test=translate_test)


def seeded_cells(cells, tta=()):
    """Run every config of `cells` (name → configs over seeds), all checked first; return
    ``(results, runs)``: per name the mean ± std of `SUMMARY_KEYS` (and ``tta_accuracy``
    with the views `tta`, a subset of {"flip", "translate"}), and the last cell's metrics."""
    check_runs([config for configs in cells.values() for config in configs])
    done = {}  # seed by seed: a study stopped part-way has every cell at its first seeds
    for round_ in itertools.zip_longest(*cells.values()):
        for config in filter(None, round_):
            done[config.output] = run_once(config)
    results = {}
    for name, configs in cells.items():
        runs = [done[config.output] for config in configs]
        keys = [key for key in SUMMARY_KEYS if all(key in r for r in runs)]
        results[name] = {key: mean_std([r[key] for r in runs]) for key in keys}
        if tta:
            accuracies = [tta_metrics(c, "flip" in tta, "translate" in tta)["test_accuracy"] for c in configs]
            results[name]["tta_accuracy"] = mean_std(accuracies)
    return results, runs


def markdown_table(caption, header, rows):
    """A caption, a blank line and a Markdown table with `header` over `rows` (lists of cell strings)."""
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
