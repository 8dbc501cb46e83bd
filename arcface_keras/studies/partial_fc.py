"""Partial FC against the exact head: accuracy over seeds at sample rates r."""

import dataclasses
import os

from arcface_keras.studies import runner
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


def partial_fc(base, folder, rates=(1.0, 0.1), seeds=(0, 1, 2)):
    """Train the margin head of `base` with each Partial FC sample rate and seed.

    Writes ``partial-fc-<dataset>.json`` / ``.md`` into `folder`: accuracy,
    macro F1, MAP@R and seconds per epoch, mean ± std over seeds, per rate.
    """
    cells = {rate: [dataclasses.replace(base, sample_rate=rate, seed=seed,
                                        output=os.path.join(folder, f"rate{rate:g}-seed{seed}")) for seed in seeds]
             for rate in rates}
    results, runs = runner.seeded_cells({f"{rate:g}": configs for rate, configs in cells.items()})
    summary = {"dataset": runs[0]["dataset"], "loss": base.loss, "seeds": list(seeds), "epochs": base.epochs,
               "backbone": base.backbone, "classes": len(runs[0]["train_class_counts"]), "train_images": runs[0]["train_images"],
               "batch_size": base.batch_size, "results": results}
    stem = os.path.join(folder, f"partial-fc-{summary['dataset']}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", partial_fc_markdown(summary))
    return summary


def partial_fc_markdown(summary):
    caption = (f"Partial FC on {summary['dataset']} ({summary['classes']:,} classes, {summary['train_images']:,} "
               f"training images), {summary['loss']}, backbone {summary['backbone']}, {summary['epochs']} epochs, "
               f"batch {summary['batch_size']}, seeds {summary['seeds']}: mean ± std.")
    header = ["sample rate", "test accuracy", "macro F1", "MAP@R", "s / epoch"]
    rows = [[rate, *(f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" for k in ("test_accuracy", "macro_f1", "map_at_r")),
             f"{r['seconds_per_epoch']['mean']:.1f}"] for rate, r in summary["results"].items()]
    return runner.markdown_table(caption, header, rows)
