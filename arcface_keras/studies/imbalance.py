"""Class imbalance: long-tailed training splits, per-class recall of each remedy."""

import dataclasses
import os

import numpy as np

from arcface_keras.studies import runner
from arcface_keras.toolkit import plots
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


IMBALANCE_ARMS = {
    "softmax": {"loss": "softmax"},
    "arcface": {"loss": "arcface"},
    "arcface-class-margins": {"loss": "arcface", "per_class_margins": True},
}


def imbalance(base, folder, ratios=(10.0, 100.0), minority_share=0.3):
    """Long-tailed training sets; softmax vs ArcFace vs per-class margins.

    The test set stays balanced. Minority classes are the last
    ``minority_share`` of the classes (the tail of the profile).
    """
    rows = []
    cells = {(ratio, arm): dataclasses.replace(base, imbalance_ratio=float(ratio), **overrides,
                                               output=os.path.join(folder, f"ratio{ratio:g}-{arm}"))
             for ratio in ratios for arm, overrides in IMBALANCE_ARMS.items()}
    runner.check_runs(cells.values())
    for (ratio, arm), config in cells.items():
        metrics = runner.run_once(config)
        recall = np.asarray(metrics["per_class"]["recall"])
        minority = max(1, int(round(minority_share * len(recall))))
        rows.append({
            "ratio": ratio, "arm": arm, "test_accuracy": metrics["test_accuracy"], "macro_f1": metrics["macro_f1"],
            "minority_recall": float(recall[-minority:].mean()), "majority_recall": float(recall[:-minority].mean()),
            "per_class_recall": recall.tolist(), "train_class_counts": metrics["train_class_counts"],
        })
    dataset = metrics["dataset"]
    summary = {"dataset": dataset, "epochs": base.epochs, "minority_classes": minority, "rows": rows}
    stem = os.path.join(folder, f"imbalance-{dataset}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", imbalance_markdown(summary))
    for ratio in ratios:
        plots.per_class_recall(f"{stem}-ratio{ratio:g}.png",
                               {r["arm"]: r["per_class_recall"] for r in rows if r["ratio"] == ratio},
                               rows[[r["ratio"] for r in rows].index(ratio)]["train_class_counts"],
                               title=f"{dataset}, imbalance ratio {ratio:g}: per-class test recall")
    return summary


def imbalance_markdown(summary):
    caption = (f"{summary['dataset']}, {summary['epochs']} epochs, balanced test set; minority = the "
               f"{summary['minority_classes']} rarest classes.")
    header = ["ratio", "method", "test accuracy", "macro F1", "majority recall", "minority recall"]
    rows = [[f"{r['ratio']:g}", r["arm"], *(f"{r[k]:.4f}" for k in
                                              ("test_accuracy", "macro_f1", "majority_recall", "minority_recall"))]
            for r in summary["rows"]]
    return runner.markdown_table(caption, header, rows)
