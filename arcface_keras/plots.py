"""Matplotlib figures, written to files (no screen needed)."""

import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(figure)
    os.replace(temporary, path)
    return path


def training_curves(history_csv, path):
    """Loss and accuracy per epoch, from a Keras CSVLogger file."""
    with open(history_csv) as file:
        rows = list(csv.DictReader(file))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", left), ("accuracy", right)):
        for prefix, label in (("", "train (with margin)"), ("val_", "validation (inference)")):
            if rows and prefix + key in rows[0]:
                axis.plot(epochs, [float(r[prefix + key]) for r in rows], marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Training curves")
    return _save(figure, path)
