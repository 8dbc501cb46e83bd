"""The (scale, margin) sweep: a grid scored on validation, the best cell on test."""

import dataclasses
import os

import numpy as np

from arcface_keras.studies import runner
from arcface_keras.toolkit import plots, report
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


def sweep(base, folder, scales=(8.0, 16.0, 32.0, 64.0), margins=(0.1, 0.2, 0.3, 0.5, 0.7)):
    """Grid over scale and margin scored on validation; the best cell on test.

    Cells train with ``evaluate_test=False``: the test split is touched once,
    for the cell with the best validation accuracy.
    """
    grid = np.zeros((len(scales), len(margins)))
    cells = {(i, j): dataclasses.replace(base, scale=float(scale), margin=float(margin), evaluate_test=False,
                                         output=os.path.join(folder, f"s{scale:g}-m{margin:g}"))
             for i, scale in enumerate(scales) for j, margin in enumerate(margins)}
    runner.check_runs(cells.values())
    for (i, j), cell in cells.items():
        grid[i, j] = runner.run_once(cell)["val_accuracy"]
    best_i, best_j = np.unravel_index(np.argmax(grid), grid.shape)
    best_folder = os.path.join(folder, f"s{scales[best_i]:g}-m{margins[best_j]:g}")
    best = report.evaluate_folder(best_folder)
    dataset = best["dataset"]
    summary = {
        "dataset": dataset, "loss": base.loss, "epochs": base.epochs, "scales": list(scales), "margins": list(margins),
        "val_accuracy": grid.tolist(),
        "best": {"scale": scales[best_i], "margin": margins[best_j], "val_accuracy": float(grid[best_i, best_j]),
                 "test_accuracy": best["test_accuracy"], "macro_f1": best["macro_f1"]},
    }
    stem = os.path.join(folder, f"sweep-{dataset}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", sweep_markdown(summary))
    plots.heatmap(stem + ".png", grid, [f"{s:g}" for s in scales], [f"{m:g}" for m in margins],
                  "scale s", "margin m", title=f"{dataset} {base.loss}: validation accuracy ({base.epochs} epochs)")
    return summary


def sweep_markdown(summary):
    caption = (f"Validation accuracy, {summary['dataset']}, {summary['loss']}, {summary['epochs']} epochs "
               "(rows: scale s, columns: margin m).")
    header = ["s \\ m", *(f"{m:g}" for m in summary["margins"])]
    rows = [[f"{scale:g}", *(f"{v:.4f}" for v in row)] for scale, row in zip(summary["scales"], summary["val_accuracy"])]
    best = summary["best"]
    return runner.markdown_table(caption, header, rows) + (
        f"\nBest cell s = {best['scale']:g}, m = {best['margin']:g}: validation {best['val_accuracy']:.4f}, "
        f"test {best['test_accuracy']:.4f} (macro F1 {best['macro_f1']:.4f}), evaluated once.\n")
