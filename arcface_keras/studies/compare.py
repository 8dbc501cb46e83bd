"""Loss comparison over seeds: each loss trained with each seed on the same backbone, data and budget."""

import dataclasses
import os

from arcface_keras.studies import runner
from arcface_keras.toolkit import plots
from arcface_keras.toolkit.config import COMPARE_LOSSES
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


def compare(base, folder, losses=COMPARE_LOSSES, seeds=(0, 1, 2), tta=()):
    """Train each loss with each seed on the same backbone, data and budget.

    With `tta` (views "flip", "translate") each run is also evaluated with
    that test-time augmentation (``tta_accuracy``). Writes ``compare-<dataset>.json`` / ``.md`` and a bar chart with error
    bars (one standard deviation over seeds) into `folder`, anew after every seed: a study stopped part-way
    reports the seeds it finished.
    """
    cells = {loss: [dataclasses.replace(base, loss=loss, seed=seed, output=os.path.join(folder, f"{loss}-seed{seed}"))
                    for seed in seeds] for loss in losses}
    runner.check_runs([config for configs in cells.values() for config in configs])
    for done in range(1, len(seeds) + 1):  # finished seeds are read back from their run folders
        summary = _write_comparison(base, folder, {loss: configs[:done] for loss, configs in cells.items()},
                                    seeds[:done], tta)
    return summary


def _write_comparison(base, folder, cells, seeds, tta):
    results, runs = runner.seeded_cells(cells, tta)
    dataset = runs[0]["dataset"]
    summary = {"dataset": dataset, "seeds": list(seeds), "epochs": base.epochs, "backbone": base.backbone, "tta": list(tta),
               "train_images": runs[0]["train_images"], "results": results}
    stem = os.path.join(folder, f"compare-{dataset}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", compare_markdown(summary))
    plots.comparison_bars(stem + ".png", {loss: r["test_accuracy"] for loss, r in results.items()},
                          title=f"{dataset}: test accuracy over {len(seeds)} seeds ({base.epochs} epochs, {base.backbone})")
    return summary


def compare_markdown(summary):
    caption = (f"{summary['dataset']}, backbone {summary['backbone']}, {summary['epochs']} epochs, "
               f"{summary['train_images']} training images, seeds {summary['seeds']}: mean ± std.")
    names = {"test_accuracy": "test accuracy", "tta_accuracy": f"with TTA ({' + '.join(summary.get('tta', []))})",
             "macro_precision": "macro precision", "macro_recall": "macro recall", "macro_f1": "macro F1",
             "map_at_r": "MAP@R", "eer": "EER"}
    first = next(iter(summary["results"].values()))
    keys = [key for key in names if key in first]
    rows = [[loss, *(f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" for k in keys),
             f"{r['seconds_per_epoch']['mean']:.1f}"] for loss, r in summary["results"].items()]
    return runner.markdown_table(caption, ["loss", *(names[k] for k in keys), "s / epoch"], rows)
