"""The evaluation of one run: every metric, the figures, and report.md.

`train()` calls `evaluate_run` at the end of every run; `scripts/evaluate.py`
calls it again on a saved run folder.
"""

import json
import os
import zipfile

import keras
import numpy as np

from arcface_keras.toolkit import data as data_lib
from arcface_keras.toolkit import evaluation, models, plots
from arcface_keras.errors import RunFolderError
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic

FIGURES = {
    "embeddings": "embeddings.png",
    "confusion": "confusion_matrix.png",
    "angles": "target_angles.png",
    "roc": "roc.png",
    "curves": "training_curves.png",
}


def evaluate_run(folder, train_model, splits, batch_size=100, extra=None, inference=None):
    """Evaluate `train_model` on the test split; write metrics, figures, report.

    Args:
        folder: the run folder.
        train_model: the trained (or reloaded) training model.
        splits: the run's `DataSplits`.
        batch_size: inference batch size. Defaults to `100`.
        extra: more entries for ``metrics.json`` (timings, config).
        inference: the run's label-free model, if already built; else it is
            derived from `train_model`.

    Returns:
        The metrics dict, as written to ``metrics.json``.
    """
    inference = inference or models.inference_model(train_model)
    outputs = models.predict(inference, splits.x_test, batch_size)
    head = models.parts(train_model)[2]
    sub_centers = getattr(head, "sub_centers", 1)
    centers = models.class_centers(train_model)
    metrics, arrays = evaluation.full_evaluation(
        splits.y_test, np.asarray(outputs["probabilities"]), np.asarray(outputs["embedding"]),
        centers, sub_centers, splits.num_classes,
    )
    metrics["center_cosine"] = evaluation.center_cosines(centers)
    metrics["class_names"] = list(splits.class_names)
    metrics.update(extra or {})
    name = f"{splits.name} / {metrics.get('loss', train_model.name)}"
    plots.embeddings(os.path.join(folder, FIGURES["embeddings"]), outputs["embedding"], splits.y_test,
                     centers, sub_centers, title=f"Test embeddings, {name}", class_names=splits.class_names)
    if metrics["confusion_matrix"] is not None:  # None above evaluation.CONFUSION_MAX_CLASSES classes
        plots.confusion_matrix(os.path.join(folder, FIGURES["confusion"]), metrics["confusion_matrix"],
                               title=f"Confusion, {name}", class_names=splits.class_names)
    plots.target_angle_histogram(os.path.join(folder, FIGURES["angles"]), arrays["target_angles"], splits.y_test,
                                 title=f"Angle to own class center, {name}")
    plots.roc_curve(os.path.join(folder, FIGURES["roc"]), arrays["roc"]["far"], arrays["roc"]["tar"], title=f"Verification ROC, {name}")
    history = os.path.join(folder, "history.csv")
    if os.path.exists(history):
        plots.training_curves(history, os.path.join(folder, FIGURES["curves"]))
    write_json_atomic(os.path.join(folder, "metrics.json"), metrics)
    write_text_atomic(os.path.join(folder, "report.md"), render(metrics, name))
    return metrics


def render(metrics, name):
    """report.md: the numbers as tables, the figures beside them."""
    angles = metrics["angles"]
    lines = [
        f"# Evaluation: {name}",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    rows = [
        ("test accuracy", metrics["test_accuracy"]),
        ("macro precision", metrics["macro_precision"]),
        ("macro recall", metrics["macro_recall"]),
        ("macro F1", metrics["macro_f1"]),
        ("precision@1", metrics["precision_at_1"]),
        ("R-precision", metrics["r_precision"]),
        ("MAP@R", metrics["map_at_r"]),
        ("ROC AUC (pairs)", metrics["roc_auc"]),
        ("EER", metrics["eer"]),
        ("TAR @ FAR 1e-3", metrics["tar_at_far_1e-3"]),
    ]
    if "center_cosine" in metrics:
        rows += [("center cosine, mean (1 = collapsed)", metrics["center_cosine"]["mean"]),
                 ("center cosine, max", metrics["center_cosine"]["max"])]
    lines += [f"| {label} | {value:.4f} |" for label, value in rows]
    calibration = metrics.get("calibration")
    if calibration:
        pairs = calibration["pairs"]
        lines += ["", f"Cosine thresholds for \"same class\", from {pairs['same']} same-class and "
                      f"{pairs['different']} different-class validation pairs (none: too few pairs for the rate):", "",
                  "| operating point | cosine threshold |", "| --- | --- |"]
        lines += [f"| {key.replace('_', ' ').replace('far', 'FAR').replace('eer', 'EER')} | "
                  f"{'none' if value is None else f'{value:.4f}'} |" for key, value in calibration["thresholds"].items()]
    lines += ["", "| angle (degrees) | value |", "| --- | --- |"]
    lines += [f"| {key.replace('_', ' ')} | {value:.2f} |" for key, value in angles.items()]
    per_class = metrics["per_class"]
    many = metrics.get("confusion_matrix", ()) is None  # too many classes for a table (and a confusion matrix)
    if many:
        lines += ["", f"Per-class precision, recall and F1 of the {len(per_class['f1']):,} classes: metrics.json."]
    else:
        lines += ["", "| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        names = metrics.get("class_names") or [str(c) for c in range(len(per_class["f1"]))]
        for c, (p, r, f, s) in enumerate(zip(per_class["precision"], per_class["recall"], per_class["f1"],
                                             per_class["support"])):
            label = str(c) if names[c] == str(c) else f"{c}: {names[c].replace('|', '/')}"
            lines.append(f"| {label} | {p:.4f} | {r:.4f} | {f:.4f} | {s} |")
    if "train_seconds" in metrics:
        lines += ["", f"Training: {metrics.get('epochs')} epochs, {metrics['train_seconds']:.0f} s."]
    lines += ["", *[f"![{key}]({path})" for key, path in FIGURES.items() if not (many and key == "confusion")], ""]
    return "\n".join(lines)


def evaluate_folder(folder, flip_test=False, translate_test=False):
    """Recompute the evaluation of a saved run folder from its files.

    With `flip_test` the model averages each test image's embedding with its
    mirror image's; that evaluation goes to ``<folder>/flip_test/`` and leaves
    the run's own numbers untouched. With `translate_test` it also averages
    one-pixel shifts (`models.inference_model`), into ``<folder>/tta/``.
    """
    if not os.path.isdir(folder):
        raise RunFolderError(f"run folder {folder!r} does not exist or is not a folder.")
    metrics_path = os.path.join(folder, "metrics.json")
    model_path = os.path.join(folder, "model.keras")
    for path in (metrics_path, model_path):
        if not os.path.exists(path):
            raise RunFolderError(f"{folder!r} is not a finished run folder: {os.path.basename(path)} is missing.")
    try:
        with open(metrics_path) as file:
            previous = json.load(file)
        config = previous["config"]
        settings = [config[k] for k in ("dataset", "data", "validation_fraction", "train_samples", "seed", "batch_size")]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunFolderError(f"{metrics_path!r} is not a run's metrics file ({type(error).__name__}: {error}).") from None
    splits = data_lib.load(*settings[:5], imbalance_ratio=config.get("imbalance_ratio"),
                           image_size=config.get("image_size"), color_mode=config.get("color_mode", "auto"),
                           classes=config.get("classes"))
    try:
        train_model = keras.models.load_model(model_path, compile=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # what a file that is not a model raises
        raise RunFolderError(f"{model_path!r} is not a readable Keras model ({type(error).__name__}: {error}).") from None
    keep = {k: previous[k] for k in ("dataset", "loss", "epochs", "train_seconds", "seconds_per_epoch", "train_images",
                                     "images_per_second", "precision_policy", "val_accuracy", "train_class_counts", "class_names", "data", "calibration",
                                     "config") if k in previous}
    subfolder = evaluation_subfolder(flip_test, translate_test)
    if subfolder:
        folder = os.path.join(folder, subfolder)
        os.makedirs(folder, exist_ok=True)
        keep.update(flip_test=flip_test, translate_test=translate_test)
    inference = models.inference_model(train_model, flip_test=flip_test or config.get("flip_test", False),
                                       translate_test=translate_test or config.get("translate_test", False))
    return evaluate_run(folder, train_model, splits, settings[5], extra=keep, inference=inference)


def evaluation_subfolder(flip_test, translate_test):
    """Where `evaluate_folder` writes an evaluation the run did not ask for, one
    folder per set of views: ``tta`` (mirror and one-pixel shifts, 6 views),
    ``shift_test`` (shifts only), ``flip_test``, or "" (the run's own)."""
    if translate_test:
        return "tta" if flip_test else "shift_test"
    return "flip_test" if flip_test else ""
