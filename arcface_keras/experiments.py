"""Studies built from many `train(config)` runs: loss comparison over seeds,
the (s, m) sweep, and class imbalance. Each run keeps its own run folder under
the study's folder, so an interrupted study resumes: finished runs (their
``metrics.json`` exists) are read back, not trained again.
"""

import csv
import dataclasses
import itertools
import json
import os

import numpy as np

from arcface_keras import evaluation, models, plots, report, run_folder
from arcface_keras.errors import RunFolderError, UserInputError
from arcface_keras.io import write_json_atomic, write_text_atomic
from arcface_keras.config import differing_settings
from arcface_keras.training import TrainConfig, train

from arcface_keras.config import COMPARE_LOSSES, OPEN_SET_LOSSES  # noqa: E402,F401
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


def _mean_std(values):
    values = np.asarray(values, dtype="float64")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist()}


def tta_metrics(config, flip_test, translate_test):
    """The test metrics of `config`'s finished run under test-time augmentation
    (`report.evaluate_folder`, kept in the run's ``tta/`` or ``flip_test/``)."""
    from arcface_keras import report

    path = os.path.join(config.run_folder, report.evaluation_subfolder(flip_test, translate_test), run_folder.METRICS)
    if os.path.exists(path):
        with open(path) as file:
            stored = json.load(file)
        # run folders evaluated before shift_test/ existed hold shifts-only results in tta/
        if (stored.get("flip_test"), stored.get("translate_test")) == (flip_test, translate_test):
            return stored
    return report.evaluate_folder(config.run_folder, flip_test=flip_test, translate_test=translate_test)


def _seeded_cells(cells, tta=()):
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
        results[name] = {key: _mean_std([r[key] for r in runs]) for key in keys}
        if tta:
            accuracies = [tta_metrics(c, "flip" in tta, "translate" in tta)["test_accuracy"] for c in configs]
            results[name]["tta_accuracy"] = _mean_std(accuracies)
    return results, runs


# ------------------------------------------------------------------ compare --
def compare(base, folder, losses=COMPARE_LOSSES, seeds=(0, 1, 2), tta=()):
    """Train each loss with each seed on the same backbone, data and budget.

    With `tta` (views "flip", "translate") each run is also evaluated with
    that test-time augmentation (``tta_accuracy``). Writes ``compare-<dataset>.json`` / ``.md`` and a bar chart with error
    bars (one standard deviation over seeds) into `folder`, anew after every seed: a study stopped part-way
    reports the seeds it finished.
    """
    cells = {loss: [dataclasses.replace(base, loss=loss, seed=seed, output=os.path.join(folder, f"{loss}-seed{seed}"))
                    for seed in seeds] for loss in losses}
    check_runs([config for configs in cells.values() for config in configs])
    for done in range(1, len(seeds) + 1):  # finished seeds are read back from their run folders
        summary = _write_comparison(base, folder, {loss: configs[:done] for loss, configs in cells.items()},
                                    seeds[:done], tta)
    return summary


def _write_comparison(base, folder, cells, seeds, tta):
    results, runs = _seeded_cells(cells, tta)
    dataset = runs[0]["dataset"]
    summary = {"dataset": dataset, "seeds": list(seeds), "epochs": base.epochs, "backbone": base.backbone, "tta": list(tta),
               "train_images": runs[0]["train_images"], "results": results}
    stem = os.path.join(folder, f"compare-{dataset}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", compare_markdown(summary))
    plots.comparison_bars(stem + ".png", {loss: r["test_accuracy"] for loss, r in results.items()},
                          title=f"{dataset}: test accuracy over {len(seeds)} seeds ({base.epochs} epochs, {base.backbone})")
    return summary


def markdown_table(caption, header, rows):
    """A caption, a blank line and a Markdown table with `header` over `rows` (lists of cell strings)."""
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    return markdown_table(caption, ["loss", *(names[k] for k in keys), "s / epoch"], rows)


# -------------------------------------------------------------------- sweep --
def sweep(base, folder, scales=(8.0, 16.0, 32.0, 64.0), margins=(0.1, 0.2, 0.3, 0.5, 0.7)):
    """Grid over scale and margin scored on validation; the best cell on test.

    Cells train with ``evaluate_test=False``: the test split is touched once,
    for the cell with the best validation accuracy.
    """
    grid = np.zeros((len(scales), len(margins)))
    cells = {(i, j): dataclasses.replace(base, scale=float(scale), margin=float(margin), evaluate_test=False,
                                         output=os.path.join(folder, f"s{scale:g}-m{margin:g}"))
             for i, scale in enumerate(scales) for j, margin in enumerate(margins)}
    check_runs(cells.values())
    for (i, j), cell in cells.items():
        grid[i, j] = run_once(cell)["val_accuracy"]
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
    return markdown_table(caption, header, rows) + (
        f"\nBest cell s = {best['scale']:g}, m = {best['margin']:g}: validation {best['val_accuracy']:.4f}, "
        f"test {best['test_accuracy']:.4f} (macro F1 {best['macro_f1']:.4f}), evaluated once.\n")


# ---------------------------------------------------------------- imbalance --
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
    check_runs(cells.values())
    for (ratio, arm), config in cells.items():
        metrics = run_once(config)
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
    return markdown_table(caption, header, rows)


# -------------------------------------------------------------- convergence --
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
    check_runs([config for _, config in cells.values()])
    for name, (overrides, config) in cells.items():
        metrics = run_once(config)
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
    return markdown_table(caption, header, rows)


# ----------------------------------------------------------------- open set --
OPEN_SET_KEYS = ("closed_set_accuracy", "dir_at_fpir_1e-2")


def open_set(base, folder, train_classes, enrol_classes, impostor_classes, losses=OPEN_SET_LOSSES, seeds=(0, 1, 2),
             shots=(1, 5), fpir=1e-2):
    """Classes never trained on, from each run's SavedModel: enrol K images of
    each `enrol_classes` class, identify the rest, reject `impostor_classes`.

    Each (loss, seed) trains on `train_classes` only (class-name patterns).
    All images of the unseen classes (every split) are used: per enrolled
    class K are drawn (seeded) to enrol, the others are probes. Reports the
    closed-set identification accuracy of the probes and the DIR at FPIR
    `fpir` (the threshold accepts that share of impostors' best scores), mean
    ± std over seeds, per loss and K.
    """
    from arcface_keras import data as data_lib
    from arcface_keras import gallery

    cells = {(loss, seed): dataclasses.replace(base, loss=loss, seed=seed, classes=list(train_classes),
                                               output=os.path.join(folder, f"{loss}-seed{seed}"))
             for loss in losses for seed in seeds}
    check_runs(cells.values())
    unseen = {}
    for role, patterns in (("enrol", enrol_classes), ("impostor", impostor_classes)):
        splits = data_lib.load(base.dataset, base.data, base.validation_fraction, None, 0,
                               image_size=base.image_size, color_mode=base.color_mode, classes=list(patterns))
        unseen[role] = _all_images(splits)
    overlap = set(unseen["enrol"][2]) & set(unseen["impostor"][2])
    if overlap:
        raise UserInputError(f"classes both enrolled and impostors: {sorted(overlap)[:5]}")
    rows = {}
    for (loss, seed), config in cells.items():
        run_once(config)
        model = gallery.ExportedModel(config.run_folder)
        enrol_embeddings = model.embed(unseen["enrol"][0])
        impostor_embeddings = model.embed(unseen["impostor"][0])
        for shot in shots:
            rows.setdefault((loss, shot), []).append(open_set_scores(
                enrol_embeddings, unseen["enrol"][1], impostor_embeddings, shot, fpir, seed))
    results = {f"{loss}, K={shot}": {key: _mean_std([r[key] for r in runs]) for key in OPEN_SET_KEYS}
               for (loss, shot), runs in rows.items()}
    from arcface_keras.data import data_name

    summary = {"dataset": data_name(base.dataset, base.data), "train_classes": list(train_classes), "enrol_classes": list(enrol_classes),
               "impostor_classes": list(impostor_classes), "seeds": list(seeds), "shots": list(shots), "fpir": fpir,
               "epochs": base.epochs, "backbone": base.backbone,
               "unseen_images": {"enrol": int(len(unseen["enrol"][1])), "impostor": int(len(unseen["impostor"][1]))},
               "results": results}
    stem = os.path.join(folder, f"open-set-{summary['dataset']}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", open_set_markdown(summary))
    return summary


def _all_images(splits):
    """(images, labels, class names) of every split together."""
    parts = [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)]
    if isinstance(splits.x_train, np.ndarray):
        images = np.concatenate([x for x, _ in parts])
    else:
        images = dataclasses.replace(splits.x_train, paths=np.concatenate([x.paths for x, _ in parts]))
    return images, np.concatenate([y for _, y in parts]), list(splits.class_names)


def open_set_scores(embeddings, labels, impostors, shot, fpir=1e-2, seed=0):
    """Closed-set accuracy and DIR at `fpir` for one enrolment of `shot` images a class."""
    from arcface_keras import gallery

    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    enrolled, probes = [], []
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) <= shot:
            raise UserInputError(f"class {c} has {len(members)} images: K = {shot} leaves no probe.")
        enrolled.append(members[:shot])
        probes.append(members[shot:])
    centers = np.stack([_unit_mean(embeddings[e]) for e in enrolled])
    probes = np.concatenate(probes)
    indices, scores = gallery.search(centers, embeddings[probes], top_k=1)
    correct = classes[indices[:, 0]] == labels[probes]
    _, impostor_scores = gallery.search(centers, impostors, top_k=1)
    threshold = float(np.quantile(impostor_scores[:, 0], 1.0 - fpir, method="higher"))
    threshold = float(np.nextafter(threshold, np.inf))  # accept strictly fewer than the top fpir share
    return {"closed_set_accuracy": float(correct.mean()),
            "dir_at_fpir_1e-2": float(np.mean(correct & (scores[:, 0] >= threshold))),
            "fpir_measured": float(np.mean(impostor_scores[:, 0] >= threshold)), "threshold": threshold}


def _unit_mean(vectors):
    from sklearn.preprocessing import normalize

    return normalize(normalize(vectors).mean(axis=0, keepdims=True))[0]


def open_set_markdown(summary):
    caption = (f"{summary['dataset']}, open set: trained on {summary['train_classes']}, enrolled "
               f"{summary['enrol_classes']} ({summary['unseen_images']['enrol']} images), impostors "
               f"{summary['impostor_classes']} ({summary['unseen_images']['impostor']} images); backbone "
               f"{summary['backbone']}, {summary['epochs']} epochs, seeds {summary['seeds']}: mean ± std.")
    header = ["loss, K", "closed-set accuracy (unseen classes)", f"DIR at FPIR {summary['fpir']:g}"]
    rows = [[name, *(f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" for k in OPEN_SET_KEYS)]
            for name, r in summary["results"].items()]
    return markdown_table(caption, header, rows)


# --------------------------------------------------------------- partial fc --
def partial_fc(base, folder, rates=(1.0, 0.1), seeds=(0, 1, 2)):
    """Train the margin head of `base` with each Partial FC sample rate and seed.

    Writes ``partial-fc-<dataset>.json`` / ``.md`` into `folder`: accuracy,
    macro F1, MAP@R and seconds per epoch, mean ± std over seeds, per rate.
    """
    cells = {rate: [dataclasses.replace(base, sample_rate=rate, seed=seed,
                                        output=os.path.join(folder, f"rate{rate:g}-seed{seed}")) for seed in seeds]
             for rate in rates}
    results, runs = _seeded_cells({f"{rate:g}": configs for rate, configs in cells.items()})
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
    return markdown_table(caption, header, rows)
