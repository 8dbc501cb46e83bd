"""Convergence: which of the recipe's settings keep the class centers apart (naive to recipe, one change at a time)."""

import csv
import dataclasses
import os

from arcface_keras.studies import runner
from arcface_keras.toolkit import evaluation, models
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


# From the straightforward face-recognition recipe to ours, one change at a
# time. Each variant is a set of TrainConfig overrides on top of `base`.
NAIVE = {"scale": 30.0, "margin": 0.5, "margin_warmup_epochs": 0.0, "lr_warmup_epochs": 0.0, "lr": 0.1,
         "backbone_options": {"bn_momentum": 0.99, "embedding_bn": False}, "fixed_centers": False}
# The variants named "learned centers" keep trainable class centers (the
# recipe fixes them); the fixed-center variants compare against them.
LEARNED = {"fixed_centers": False}
CONVERGENCE_VARIANTS = {
    "naive (s=30, m=0.5, lr 0.1, no warm-ups, BN 0.99, no embedding BN)": NAIVE,
    "naive + embedding BN": {**NAIVE, "backbone_options": {"bn_momentum": 0.99, "embedding_bn": True}},
    "naive + margin warm-up": {**NAIVE, "margin_warmup_epochs": 1.0},
    "naive + s=16, m=0.3": {**NAIVE, "scale": 16.0, "margin": 0.3},
    "recipe, learned centers": LEARNED,
    "recipe, learned centers, s=30, m=0.5": {**LEARNED, "scale": 30.0, "margin": 0.5},
    "recipe, learned centers, without margin warm-up": {**LEARNED, "margin_warmup_epochs": 0.0},
    "recipe, learned centers, without embedding BN": {**LEARNED, "backbone_options": {"embedding_bn": False}},
    "recipe, learned centers, BN momentum 0.99": {**LEARNED, "backbone_options": {"bn_momentum": 0.99}},
    "recipe, learned centers, lr 0.1, no lr warm-up": {**LEARNED, "lr": 0.1, "lr_warmup_epochs": 0.0},
    "softmax (same backbone and budget)": {"loss": "softmax"},
    "recipe, learned centers, margin ramped over 3 epochs": {**LEARNED, "margin_warmup_epochs": 3.0},
    "recipe, learned centers, m=0.1": {**LEARNED, "margin": 0.1},
    "recipe, learned centers, CosFace m=0.2": {**LEARNED, "loss": "cosface"},
    "recipe, learned centers, s=8, m=0.1": {**LEARNED, "scale": 8.0, "margin": 0.1},
    "recipe, learned centers, easy margin": {**LEARNED, "easy_margin": True},
    "recipe, fixed orthogonal centers": {"fixed_centers": True},
    "recipe, fixed centers, s=30, m=0.5": {"fixed_centers": True, "scale": 30.0, "margin": 0.5},
}


def convergence(base, folder, variants=None):
    """Train each variant; report test accuracy in inference mode and final training loss."""
    rows = []
    names = list(CONVERGENCE_VARIANTS)
    cells = {}
    for name, overrides in (variants or CONVERGENCE_VARIANTS).items():
        index = names.index(name) if name in names else len(names) + len(cells)
        cells[name] = (overrides, dataclasses.replace(base, **overrides, output=os.path.join(folder, f"variant{index:02d}")))
    runner.check_runs([config for _, config in cells.values()])
    for name, (overrides, config) in cells.items():
        metrics = runner.run_once(config)
        with open(os.path.join(config.run_folder, "history.csv")) as file:
            history = list(csv.DictReader(file))[-1]
        rows.append({"variant": name, "overrides": overrides, "test_accuracy": metrics["test_accuracy"],
                     "train_accuracy_with_margin": float(history.get("accuracy", "nan")),
                     "final_train_loss": float(history["loss"]),
                     "center_cosine": _center_cosines(config.run_folder, metrics)})
    summary = {"dataset": metrics["dataset"], "epochs": base.epochs, "train_images": metrics["train_images"], "rows": rows}
    write_json_atomic(os.path.join(folder, "convergence.json"), summary)
    write_text_atomic(os.path.join(folder, "convergence.md"), convergence_markdown(summary))
    return summary


def _center_cosines(folder, metrics=None):
    """Class-center cosines of a run (how far the centers collapsed): from its
    ``metrics.json``, or from its saved model for runs made before they were
    recorded there."""
    if metrics and ("center_cosine" in metrics or "centre_cosine" in metrics):
        return metrics.get("center_cosine", metrics.get("centre_cosine"))
    import keras

    model = keras.models.load_model(os.path.join(folder, "model.keras"), compile=False)
    return evaluation.center_cosines(models.class_centers(model))


def convergence_markdown(summary):
    caption = (f"{summary['dataset']}, {summary['train_images']} training images, {summary['epochs']} epochs; test "
               "accuracy in inference mode (batch-norm moving statistics), training accuracy with the margin applied; "
               "center cosine: mean / max cosine between distinct class centers of the trained head (1 = collapsed).")
    header = ["variant", "test accuracy", "train accuracy (margin, batch stats)", "final train loss",
              "center cosine mean / max"]
    rows = [[r["variant"], f"{r['test_accuracy']:.4f}", f"{r['train_accuracy_with_margin']:.4f}",
             f"{r['final_train_loss']:.3f}", f"{r['center_cosine']['mean']:.2f} / {r['center_cosine']['max']:.2f}"]
            for r in summary["rows"]]
    return runner.markdown_table(caption, header, rows)
